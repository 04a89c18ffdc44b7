"""Hostile payloads for fuzzing formats and the ingest path, and the accounting they must meet.

One generator serves three drivers: hypothesis in the tests (which shrinks a failure to a small
payload), a seeded ``random.Random`` in ``benchmarks/fuzz_decode.py`` (a million inputs in
minutes), and a format author's own tests. It draws every decision from a :class:`Choices`, so
the same grammar of hostility is explored however the randomness is supplied:

- random bytes, and valid payloads with bytes flipped, truncated, or a BOM / NUL / garbage added;
- random JSON, deeply nested JSON, every JSON escape (``\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX``)
  including lone and paired surrogates, reversed pairs, ``\\u0000`` and invalid escapes;
- numbers JSON parsers disagree on (``1e999``, 400-digit integers, ``-0``, ``NaN``, ``01``);
- readings with fields missing, mistyped, duplicated (duplicate keys), escaped key names, extra
  nested junk; arrays mixing valid readings, invalid readings and non-objects.

:func:`canonical_units` is the independent accounting for the canonical JSON format: which
outcomes (one per array item, or one for the whole message) a payload must produce, computed
with the standard library's parser, not with the decoder under test.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")


class Choices(Protocol):
    """Where a generator's decisions come from (hypothesis' ``draw`` or a seeded RNG)."""

    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        ...

    def choice(self, options: Sequence[T]) -> T:
        """One of ``options``."""
        ...

    def raw(self, max_size: int) -> bytes:
        """Arbitrary bytes, at most ``max_size``."""
        ...


class RandomChoices:
    """:class:`Choices` from a seeded ``random.Random`` (fast; for long runs)."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]

    def raw(self, max_size: int) -> bytes:
        return self.rng.randbytes(self.rng.randint(0, max_size))


#: every JSON escape, the valid ones and the troublesome ones
VALID_ESCAPES = ['\\"', "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\u0000", "\\u001f", "\\u007f",
                 "\\u00e9", "\\u2028", "\\uFEFF", "\\uFFFF", "\\ud83d\\ude00", "\\uD83D\\uDE00"]
LONE_SURROGATES = ["\\ud800", "\\udbff", "\\udc00", "\\udfff", "\\ude00\\ud83d", "\\ud800\\ud800", "\\ud800x"]
INVALID_ESCAPES = ["\\x41", "\\u12", "\\uZZZZ", "\\U0001F600", "\\a", "\\'", "\\"]
NUMBER_TOKENS = ["0", "-0", "1", "-1", "12.5", "1e999", "-1e999", "1e-999", "1.7976931348623157e308",
                 "5e-324", "123456789012345678901234567890", "9" * 400, "-" + "9" * 400, "NaN", "Infinity",
                 "-Infinity", "0x10", "01", "1.", ".5", "+1", "1e", "1e+", "--1", "2000.0001", "-0.0", "1E2"]
SENSOR_IDS = ["station-7", "rp-x", "北京-站点-01-🌫", "'; DROP TABLE readings;--", "", " padded ", "a" * 129,
              "tab\there", "x" * 128]
METRICS = ["pm2_5", "temperature", "humidity", "pressure", "flux_capacitance", "", "PM2_5"]
UNITS = ["ug/m3", "µg/m³", "C", "K", "", "%", None]
KEYS = ["sensor_id", "metric", "ts", "value", "lat", "lon", "unit"]
SCALARS = ["null", "true", "false", '""', "{}", "[]", '"x"']
BOM = b"\xef\xbb\xbf"


def json_string(c: Choices, text: str) -> str:
    """``text`` as a JSON string literal, with escapes (valid, lone surrogates, invalid) mixed in."""
    parts = ['"']
    for ch in text:
        roll = c.integer(0, 19)
        if ch in '"\\' or ord(ch) < 0x20 or roll == 0:
            parts.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else ch)
        else:
            parts.append(ch)
        if roll == 1:
            parts.append(c.choice(VALID_ESCAPES))
        elif roll == 2:
            parts.append(c.choice(LONE_SURROGATES))
    if c.integer(0, 9) == 0:
        parts.append(c.choice(INVALID_ESCAPES))
    parts.append('"')
    return "".join(parts)


def json_number(c: Choices) -> str:
    kind = c.integer(0, 3)
    if kind == 0:
        return c.choice(NUMBER_TOKENS)
    if kind == 1:
        return str(c.integer(-(10 ** 30), 10 ** 30))
    return repr(c.integer(-10 ** 6, 10 ** 6) / c.choice([1, 3, 7, 1000, 1e-300, 1e300]))


def json_value(c: Choices, depth: int = 0) -> str:
    """Random JSON (mostly valid), nesting up to a few levels."""
    kind = c.integer(0, 7 if depth < 4 else 3)
    if kind == 0:
        return c.choice(SCALARS)
    if kind == 1:
        return json_number(c)
    if kind in (2, 3):
        return json_string(c, c.choice(SENSOR_IDS + METRICS + KEYS))
    if kind in (4, 5):
        return "[" + ",".join(json_value(c, depth + 1) for _ in range(c.integer(0, 4))) + "]"
    pairs = [f"{json_string(c, c.choice(KEYS + ['x', '']))}:{json_value(c, depth + 1)}" for _ in range(c.integer(0, 4))]
    return "{" + ",".join(pairs) + "}"


def deep_json(c: Choices) -> str:
    """Nesting from harmless to far past any limit."""
    n = c.choice([2, 15, 16, 17, 40, 1000, 20_000, 100_000])
    opener, closer = c.choice([("[", "]"), ('{"a":', "}"), ('[{"v":', "}]")])
    middle = c.choice(["1", "", "[]", reading_json(c, now_ms=1_700_000_000_000)])
    if opener == '[{"v":':
        return opener * n + (middle or "1") + closer * n
    return opener * n + (middle if opener == "[" or middle else "1") + closer * n


def _ts(c: Choices, now_ms: int) -> str:
    kind = c.integer(0, 9)
    if kind <= 4:
        return str(now_ms - c.integer(0, 86_400_000))
    if kind == 5:
        return f'"2026-11-30T08:{c.integer(0, 59):02d}:00{c.choice(["+01:00", "Z", "", "+25:00", "-00:00"])}"'
    if kind == 6:
        return c.choice(['"yesterday"', '""', "null", "1e999", "-1", '"1850-01-01T00:00:00Z"', "[]",
                         str(now_ms + 86_400_000), "9" * 30])
    return json_number(c)


def _value(c: Choices) -> str:
    kind = c.integer(0, 9)
    if kind <= 5:
        return repr(c.integer(0, 5000) / 10)
    if kind == 6:
        return json_number(c)
    return c.choice(["null", '"12.5"', "true", "[1]", "{}", '"NaN"'])


def reading_json(c: Choices, now_ms: int) -> str:
    """A reading object, valid about half of the time; otherwise broken in one or more ways."""
    if c.integer(0, 1) == 0:
        return json.dumps({"sensor_id": c.choice(SENSOR_IDS[:3]), "metric": c.choice(METRICS[:4]),
                           "ts": now_ms - c.integer(0, 86_400_000), "value": c.integer(0, 1000) / 10},
                          ensure_ascii=c.choice([True, False]))
    fields: list[tuple[str, str]] = [
        ("sensor_id", json_string(c, c.choice(SENSOR_IDS[:3])) if c.integer(0, 3) else json_string(
            c, c.choice(SENSOR_IDS))),
        ("metric", json.dumps(c.choice(METRICS[:4])) if c.integer(0, 4) else json_string(c, c.choice(METRICS))),
        ("ts", _ts(c, now_ms)),
        ("value", _value(c)),
    ]
    if c.integer(0, 4) == 0:
        fields += [("lat", c.choice(["52.5", "95", "null", "NaN", '"x"'])),
                   ("lon", c.choice(["13.4", "-181", "null", "1e999"]))]
    if c.integer(0, 4) == 0:
        unit = c.choice(UNITS)
        fields.append(("unit", "null" if unit is None else json_string(c, unit)))
    for _ in range(c.integer(0, 2) if c.integer(0, 2) == 0 else 0):
        mutation = c.integer(0, 4)
        if mutation == 0 and fields:  # a required field missing
            fields.pop(c.integer(0, len(fields) - 1))
        elif mutation == 1 and fields:  # a duplicate key, the second one different
            key, _ = c.choice(fields)
            fields.append((key, json_value(c)))
        elif mutation == 2:  # a field of the wrong type
            k = c.integer(0, len(fields) - 1) if fields else 0
            if fields:
                fields[k] = (fields[k][0], json_value(c))
        elif mutation == 3:  # extra nested junk
            fields.append((c.choice(["extra", "note", "\u0000", ""]), json_value(c)))
        else:  # a key written with escapes (still the same key once unescaped)
            k = c.integer(0, len(fields) - 1) if fields else 0
            if fields:
                fields[k] = (fields[k][0].replace("_", "\\u005f", 1), fields[k][1])
    body = ",".join(f'"{k}":{v}' if not k.startswith('"') else f"{k}:{v}" for k, v in fields)
    return "{" + body + "}"


def reading_array(c: Choices, now_ms: int) -> str:
    """An array mixing valid and invalid readings and items that are not objects at all."""
    items = []
    for _ in range(c.integer(0, 8)):
        kind = c.integer(0, 9)
        items.append(reading_json(c, now_ms) if kind <= 6 else json_value(c))
    sep = c.choice([",", ", ", ",\n  ", " ,\t"])
    return "[" + sep.join(items) + "]"


def _mangle(c: Choices, data: bytes) -> bytes:
    """Damage valid-looking bytes the way transports and buggy senders do."""
    kind = c.integer(0, 11)
    if kind == 0 and data:  # truncated
        return data[:c.integer(0, len(data) - 1)]
    if kind == 1:
        return BOM + data
    if kind == 2 and data:  # a NUL byte somewhere
        at = c.integer(0, len(data))
        return data[:at] + b"\x00" + data[at:]
    if kind == 3 and data:  # a flipped byte
        at = c.integer(0, len(data) - 1)
        return data[:at] + bytes([data[at] ^ (1 << c.integer(0, 7))]) + data[at + 1:]
    if kind == 4:  # trailing garbage
        return data + c.choice([b" x", b"\x00", b"]", b"}", b",", b"\n{}", c.raw(8)])
    if kind == 5:
        return data.decode("utf-8", "replace").encode(c.choice(["utf-16", "utf-16-le", "latin-1", "utf-32"]),
                                                      "replace")
    if kind == 6:  # a raw (unescaped) control or invalid-UTF-8 byte inside
        at = c.integer(0, len(data)) if data else 0
        return data[:at] + c.choice([b"\x01", b"\x1f", b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"\x7f"]) + data[at:]
    return data


def hostile_payload(c: Choices, now_ms: int) -> bytes:
    """One hostile message (bytes as a sender would publish them)."""
    kind = c.integer(0, 9)
    if kind == 0:
        return c.raw(256)
    if kind == 1:
        text = json_value(c)
    elif kind == 2:
        text = deep_json(c)
    elif kind in (3, 4):
        text = reading_json(c, now_ms)
    else:
        text = reading_array(c, now_ms)
    data = text.encode("utf-8", "surrogatepass")  # a raw surrogate yields invalid UTF-8, as senders do
    return _mangle(c, data) if c.integer(0, 3) == 0 else data


# -- accounting -----------------------------------------------------------------------------


def _too_deep(obj: object, limit: int) -> bool:
    """More than ``limit`` nested containers (objects, arrays); scalars add no level. Its own copy
    of ``formats.base.depth_exceeds`` on purpose: this accounting must not share code with the
    decoder it checks, or a bug in one would be a bug in both and go unseen."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, (dict, list)))
    return False


def canonical_units(payload: bytes, max_payload_bytes: int = 256 * 1024, max_json_depth: int = 16) -> list[int]:
    """The outcomes the canonical JSON format owes a payload: ``[0, .., n-1]`` for a non-empty
    JSON array within the limits (one per item), else ``[-1]`` (the message as a whole).

    Computed with the standard library, independently of the decoder under test."""
    if not payload or len(payload) > max_payload_bytes:
        return [-1]
    try:
        parsed = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        return [-1]
    if not isinstance(parsed, list) or not parsed or _too_deep(parsed, max_json_depth):
        return [-1]
    return list(range(len(parsed)))


def outcomes_by_message(msg_of_reading: Sequence[int], item_of_reading: Sequence[int],
                        rejections: Sequence[tuple[int, int]]) -> dict[int, list[int]]:
    """Message index -> sorted item indexes of every outcome (readings and rejections) it had."""
    out: dict[int, list[int]] = {}
    for m, j in zip(msg_of_reading, item_of_reading):
        out.setdefault(int(m), []).append(int(j))
    for m, j in rejections:
        out.setdefault(int(m), []).append(int(j))
    for items in out.values():
        items.sort()
    return out


# -- hypothesis -----------------------------------------------------------------------------


class DrawChoices:
    """:class:`Choices` from hypothesis' ``draw``: failures shrink to the smallest payload."""

    def __init__(self, draw) -> None:  # noqa: ANN001 - hypothesis' DrawFn
        from hypothesis import strategies as st

        self._draw = draw
        self._st = st

    def integer(self, lo: int, hi: int) -> int:
        return self._draw(self._st.integers(lo, hi))

    def choice(self, options: Sequence[T]) -> T:
        return self._draw(self._st.sampled_from(options))

    def raw(self, max_size: int) -> bytes:
        return self._draw(self._st.binary(max_size=max_size))


def hostile_payloads(now_ms: int, min_size: int = 1, max_size: int = 8):  # noqa: ANN201 - a SearchStrategy
    """A hypothesis strategy: a list of hostile messages (see the module doc)."""
    from hypothesis import strategies as st

    @st.composite
    def payloads(draw) -> list[bytes]:  # noqa: ANN001
        c = DrawChoices(draw)
        return [hostile_payload(c, now_ms) for _ in range(draw(st.integers(min_size, max_size)))]

    return payloads()
