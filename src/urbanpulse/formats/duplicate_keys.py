"""A JSON object that sends one key twice: found, so its record is quarantined, not half-read.

``{"value": 21.5, "value": 99}`` is valid JSON syntax, but RFC 8259 (section 4) says names SHOULD
be unique and that software meeting a repeat behaves unpredictably. Every parser here (msgspec,
``json.loads``) keeps the last member and drops the first without a trace, so 21.5 was neither
stored nor quarantined: data lost silently (product47). Now a record with a key sent twice in any
of its objects is quarantined whole as ``duplicate_key``, its bytes as sent, the detail naming the
key; the sender has to say which value it meant.

The canonical format, which reads seven fixed fields, has its own counts (formats/canonical_repeats.py).
For the others, finding repeats costs little on the usual message: :func:`quotes_of` counts the quote characters
a parsed value accounts for (two per key, two per string). A text without a backslash has exactly
that many quote characters unless a member was dropped (or, for a typed decoder that skips unknown
keys, a key it does not read was sent). Only when the count differs, or the text holds a backslash
(an escape can spell one key two ways: ``"value"`` and ``"\\u0076alue"``), is the text parsed again
to find the key (:func:`repeated_key`).
"""

from __future__ import annotations

import json
import sys

import msgspec

from urbanpulse.formats.base import depth_and_quotes
from urbanpulse.model import Reason

REASON = Reason.DUPLICATE_KEY


class _Repeated(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _decoder(only: frozenset[str] | None) -> json.JSONDecoder:
    """A decoder whose objects raise :class:`_Repeated` on the first key sent twice (of ``only``, if given)."""
    def no_repeats(pairs: list[tuple[str, object]]) -> dict:
        out = dict(pairs)
        if len(out) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen and (only is None or key in only):
                    raise _Repeated(key)
                seen.add(key)
        return out

    return json.JSONDecoder(object_pairs_hook=no_repeats)


_DECODERS: dict[frozenset[str] | None, json.JSONDecoder] = {}


def repeated_key(text: str, only: frozenset[str] | None = None) -> str | None:
    """The first key that some object of the JSON ``text`` sends twice (one of ``only``, if given: a format that
    reads a fixed set of keys), or None (also when the text does not parse: its other faults are reported where
    it is parsed)."""
    decoder = _DECODERS.get(only)
    if decoder is None:
        decoder = _DECODERS[only] = _decoder(only)
    try:
        decoder.decode(text)
    except _Repeated as found:
        return found.key
    except (ValueError, RecursionError):
        return None
    return None


_SCALAR = str | int | float | bool | None
#: a message of flat objects (a SenML pack), parsed in C
_FLAT = msgspec.json.Decoder(list[dict[str, _SCALAR]] | dict[str, _SCALAR])
#: a quote followed by JSON whitespace: a key may then be followed by a space before its colon
QUOTE_SPACE = (b'" ', b'"\t', b'"\n', b'"\r')


def flat_repeats(payload: bytes) -> bool | None:
    """Whether a message of flat objects sends a key twice, settled in C where it can be: parsed as such
    (a repeat keeps one member, so the objects hold fewer keys), against its keys as sent (``":``: with no
    backslash and no space before a colon, only a key's closing quote is followed by a colon). None where that
    does not settle it (nesting, an escape, a spaced colon, a number C cannot hold): :func:`repeated_key` then."""
    if b"\\" in payload or any(q in payload for q in QUOTE_SPACE):
        return None
    try:
        obj = _FLAT.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    keys = len(obj) if type(obj) is dict else sum(map(len, obj))
    return payload.count(b'":') != keys


def quotes_of(obj: object) -> int:
    """How many quote characters ``obj`` (parsed JSON) was written with, escapes aside: two per
    key and two per string (:func:`formats.base.depth_and_quotes`'s count, with no depth limit; iterative, so
    hostile nesting cannot exhaust the stack)."""
    return depth_and_quotes(obj, sys.maxsize)


def may_repeat(text: str | bytes, quotes: int) -> bool:
    """Whether ``text`` may send a key twice, given the ``quotes`` its parsed form accounts for
    (:func:`quotes_of`, or a typed decoder's own count): False proves it does not."""
    if isinstance(text, str):
        return "\\" in text or text.count('"') != quotes
    return b"\\" in text or text.count(b'"') != quotes


def detail(key: str, where: str = "") -> str:
    """The quarantine detail of a record that sends ``key`` twice."""
    shown = json.dumps(key)[:80]
    return (f"{where}key {shown} is sent twice in one object; JSON parsers keep one of the two silently, so the "
            "record is quarantined: send each key once")
