"""A field of a JSON message as the bytes it arrived as, for its quarantine row.

The vendor formats (TTS, ChirpStack, OwnTracks, Sensor.Community) turn one message into a reading
per field of an object (``decoded_payload``, ``object``, a location's elements) or per item of an
array (``sensordatavalues``). A rejected field used to be quarantined re-encoded from its parsed
form: ``"temperature": NaN`` became ``{"temperature":null}`` (a ``non_finite`` row showing a
null), ``1e309`` became ``null``, ``21.50`` became ``21.5``, a nested ``{"x": {"t": 1}}`` became
``{"x_t": 1}`` and Sensor.Community's bad items were Python ``repr`` text, not JSON at all. Now
the row is the field's member as sent inside its parents' keys as sent
(``{"x":{"temperature":  21.50}}``), or the array item as sent; what is re-encoded is only what
cannot be found (a payload that is not UTF-8 text never reaches here: it is rejected whole).

Members are found only when a field of a message is quarantined, and each object of a message is
scanned once however many of its fields are rejected. A duplicate key resolves to its last
member, as the parser (``json.loads``) does.
"""

from __future__ import annotations

import json
import re
_SPACE = re.compile(r"[ \t\n\r]*")
_RAW_DECODE = json.JSONDecoder().raw_decode

#: a step from a JSON value into one of its children: an object's key or an array's index
Step = str | int


class FieldPath:
    """Where a reading's field sits in its message: ``container`` leads from the message's root to
    the object or array holding the field (not shown in the row), ``steps`` from there to the field
    (each shown with its key as sent). ``parsed`` is the field's parsed form, quarantined
    re-encoded should the field not be found in the text."""

    __slots__ = ("container", "steps", "parsed")

    def __init__(self, container: tuple[Step, ...], steps: tuple[Step, ...], parsed: object) -> None:
        self.container = container
        self.steps = steps
        self.parsed = parsed


class MembersPath:
    """Several members of one object that together make a reading (an OwnTracks location's ``lat`` and ``lon``,
    for ``position_metric``): ``container`` leads to the object, ``keys`` name the members. Quarantined as an
    object of those members as sent, in the order sent (``{"lat" : 51.50,"lon":-0.12}``); ``parsed`` is
    re-encoded should one not be found (newcomer46: it always was)."""

    __slots__ = ("container", "keys", "parsed")

    def __init__(self, container: tuple[Step, ...], keys: tuple[str, ...], parsed: object) -> None:
        self.container = container
        self.keys = keys
        self.parsed = parsed


class MessageAsSent:
    """One JSON message's text, with each object's or array's members located once when asked."""

    __slots__ = ("payload", "_text", "_members")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        try:
            self._text: str | None = payload.decode("utf-8")
        except UnicodeDecodeError:
            self._text = None
        # start of an object or array -> {key or index: (member start, value start, value end)}
        self._members: dict[int, dict[Step, tuple[int, int, int]] | None] = {}

    def field(self, path: FieldPath) -> bytes | None:
        """The field at ``path`` as sent: its member within its parents' keys, or the array item;
        None when it cannot be found (the caller re-encodes ``path.parsed``)."""
        text = self._text
        at = self._container(path.container)
        if text is None or at is None:
            return None
        opened: list[str] = []
        for n, step in enumerate(path.steps):
            found = self._member(at, step)
            if found is None:
                return None
            start, value_start, value_end = found
            if isinstance(step, int):  # an array item stands for itself
                if n == len(path.steps) - 1:
                    return (text[value_start:value_end]).encode("utf-8")
                at = value_start
                continue
            opened.append(text[start:value_start])  # `"key"  :  ` as sent
            at = value_start
            if n == len(path.steps) - 1:
                leaf = text[value_start:value_end]
                return ("".join("{" + key for key in opened) + leaf + "}" * len(opened)).encode("utf-8")
        return None

    def members(self, path: MembersPath) -> bytes | None:
        """The members at ``path`` as sent, as one object; None when one cannot be found."""
        text = self._text
        at = self._container(path.container)
        if text is None or at is None:
            return None
        spans = []
        for key in path.keys:
            found = self._member(at, key)
            if found is None:
                return None
            spans.append((found[0], found[2]))
        return ("{" + ",".join(text[a:b] for a, b in sorted(spans)) + "}").encode("utf-8")

    def _container(self, container: tuple[Step, ...]) -> int | None:
        """Where the value at ``container`` (keys and indices from the top) starts in the text; None when the
        payload is not UTF-8 or a step cannot be found (the caller then re-encodes)."""
        text = self._text
        if text is None:
            return None
        at = _SPACE.match(text, 0).end()
        for step in container:
            found = self._member(at, step)
            if found is None:
                return None
            at = found[1]
        return at

    def _member(self, at: int, step: Step) -> tuple[int, int, int] | None:
        members = self._members.get(at, ...)
        if members is ...:
            members = self._members[at] = _scan(self._text or "", at)
        return None if members is None else members.get(step)


def _scan(text: str, at: int) -> dict[Step, tuple[int, int, int]] | None:
    """The members of the object or array starting at ``at``; a later duplicate key replaces an
    earlier one (as ``json.loads`` does). None when ``at`` is not an object or array."""
    space = _SPACE.match
    opener = text[at:at + 1]
    if opener not in ("{", "["):
        return None
    closer = "}" if opener == "{" else "]"
    members: dict[Step, tuple[int, int, int]] = {}
    at = space(text, at + 1).end()
    if text[at:at + 1] == closer:
        return members
    index = 0
    try:
        while True:
            start = at
            if opener == "{":
                key, at = _RAW_DECODE(text, at)
                if not isinstance(key, str):
                    return None
                at = space(text, at).end()
                if text[at:at + 1] != ":":
                    return None
                at = space(text, at + 1).end()
            else:
                key = index
                index += 1
            _, end = _RAW_DECODE(text, at)
            members[key] = (start, at, end)
            at = space(text, end).end()
            sep = text[at:at + 1]
            if sep == closer:
                return members
            if sep != ",":
                return None
            at = space(text, at + 1).end()
    except (ValueError, RecursionError):
        return None

