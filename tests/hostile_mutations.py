"""Structure-aware hostile mutations of every built-in format's realistic sample (hostile33).

The corpus in urbanpulse.fuzz is canonical-JSON shaped: fed to SenML, TTN, CBOR or CSV it mostly
fails their first check. Here each format's own sample (urbanpulse.testing.samples) is parsed and
one to four of its leaves, keys or tokens are replaced with what hostile senders write: numbers
JSON parsers disagree on (1e309, -0, NaN/Infinity literals, 2**64, 400 digits), lone surrogates,
NUL, bidi and zero-width characters, 10,000-character keys and ids, timestamps at the extremes
(year 0/9999, leap second 23:59:60, offsets +24:00, epoch 2**63), deep nesting, duplicate keys,
and many distinct metrics in one message. CBOR keeps its own types (bignums, NaN, undefined,
byte strings, tags); line protocol and CSV are mutated token by token.
"""

from __future__ import annotations

import json
import math
from typing import Any

import cbor2
from hypothesis import strategies as st

from urbanpulse.testing.samples import SAMPLE_OPTIONS, sample

FORMATS = ["json", "senml", "senml_cbor", "influx_line", "ttn_v3", "chirpstack_v4", "owntracks",
           "sensor_community", "csv"]
OPTIONS = SAMPLE_OPTIONS

#: hostile scalars (JSON text where ``raw``; else a Python value)
NUMBER_TEXT = ["1e309", "-1e309", "-0", "-0.0", "NaN", "Infinity", "-Infinity", "18446744073709551616",
               "9223372036854775808", "-9223372036854775809", "1" * 400, "1e-400", "4.9e-324", "0x10", "01",
               "1.7976931348623157e308", "1e100", "1e-200", "2.5e-101", "null", "true", "\"12.5\"", "\"NaN\"",
               "[]", "{}", "\"\""]
STRINGS = ["\ud800", "a\udfffb", "\x00", "a\x00b", "\u202e\u202d", "\u200b", "\ufeff", "x" * 10_000, "",
           " ", "\n", "é" * 3000, "🙂" * 200, "../../etc/passwd", "'; DROP TABLE readings; --", "%s%n",
           "\\u0000", "\x85", "\u00a0id", "city/+/#", "$SYS/x"]
TIMES = ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2016-12-31T23:59:60Z", "2024-02-30T00:00:00Z",
         "2024-06-01T00:00:00+24:00", "2024-06-01T00:00:00-00:00", "2024-06-01T00:00:00", "2024-06-01",
         "2024-06-01T00:00:00.123456789123Z", "1970-01-01T00:00:00Z", "+275760-09-13T00:00:00Z", "now", ""]


def _hostile_value(draw: Any, now_s: float) -> Any:
    kind = draw(st.sampled_from(["num", "str", "time", "epoch", "deep", "many", "float", "int"]))
    if kind == "num":
        return _Raw(draw(st.sampled_from(NUMBER_TEXT)))
    if kind == "str":
        return draw(st.sampled_from(STRINGS))
    if kind == "time":
        return draw(st.sampled_from(TIMES))
    if kind == "epoch":
        return draw(st.sampled_from([0, -1, 2 ** 31, 2 ** 53 + 1, 2 ** 63, -2 ** 63, int(now_s), int(now_s * 1000),
                                     int(now_s * 1e6), int(now_s * 1e9), now_s + 1e-7, 1e18, 253402300800]))
    if kind == "deep":
        depth = draw(st.integers(10, 3000))
        return _Raw("[" * depth + "1" + "]" * depth)
    if kind == "many":  # one message, many distinct names
        n = draw(st.integers(100, 5000))
        return {f"m{k}": k for k in range(n)}
    if kind == "float":
        return draw(st.floats(allow_nan=True, allow_infinity=True))
    return draw(st.integers(-(2 ** 70), 2 ** 70))


class _Raw(str):
    """JSON text put in as it is (numbers JSON parsers disagree on)."""


def _dump(obj: Any) -> str:
    """JSON text of ``obj`` with _Raw leaves as written and lone surrogates kept (as \\u escapes)."""
    if isinstance(obj, _Raw):
        return str(obj)
    if isinstance(obj, dict):
        return "{" + ",".join(f"{_dump_key(k)}:{_dump(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(_dump(v) for v in obj) + "]"
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    return json.dumps(obj)


def _dump_key(k: Any) -> str:
    if isinstance(k, _DupKey):
        return json.dumps(k.name)
    return json.dumps(str(k))


class _DupKey:
    """A key written a second time (duplicate keys: which one wins differs between parsers)."""

    def __init__(self, name: str) -> None:
        self.name = name


def _paths(obj: Any, at: tuple = ()) -> list[tuple]:
    out = [at]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.extend(_paths(v, at + (k,)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.extend(_paths(v, at + (i,)))
    return out


def _set(obj: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        obj = dict(obj)
        obj[head] = _set(obj[head], rest, value)
        return obj
    obj = list(obj)
    obj[head] = _set(obj[head], rest, value)
    return obj


def _mutate_tree(draw: Any, obj: Any, now_s: float) -> Any:
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(obj)
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(["value", "value", "value", "key", "dup", "drop"]))
        if how == "value" or not path:
            obj = _set(obj, path, _hostile_value(draw, now_s))
            continue
        parent_path, last = path[:-1], path[-1]
        parent = _get(obj, parent_path)
        if not isinstance(parent, dict):
            obj = _set(obj, path, _hostile_value(draw, now_s))
            continue
        parent = dict(parent)
        if how == "key":  # the key renamed to something hostile, the value kept
            parent[draw(st.sampled_from(STRINGS))] = parent.pop(last)
        elif how == "dup":  # the same key again, with a hostile value
            parent[_DupKey(last) if isinstance(last, str) else last] = _hostile_value(draw, now_s)
        else:
            parent.pop(last)
        obj = _set(obj, parent_path, parent)
    return obj


def _get(obj: Any, path: tuple) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def _cbor_value(draw: Any, now_s: float) -> Any:
    values = [
        2 ** 64, -(2 ** 64) - 1, 10 ** 400, float("nan"), float("inf"), -0.0, 1e-320, b"\xff\xfe", "\ud800" * 0 + "\x00",
        cbor2.CBORTag(1, 2 ** 70), cbor2.CBORTag(4, [-2, 27315]), cbor2.CBORTag(30, [1, 0]), cbor2.undefined, None,
        True, [1] * 1000, {k: k for k in range(300)}, "x" * 10_000, cbor2.CBORSimpleValue(99), now_s, int(now_s) * 1000,
    ]
    return values[draw(st.integers(0, len(values) - 1))]  # by index: tags and maps are not hashable


def _mutate_cbor(draw: Any, payload: bytes, now_s: float) -> bytes:
    obj = cbor2.loads(payload)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(obj)))
        obj = _set(obj, path, _cbor_value(draw, now_s))
    try:
        return cbor2.dumps(obj)
    except Exception:  # noqa: BLE001 - a value cbor2 cannot write: send it raw instead
        return payload + b"\xff"


def _mutate_tokens(draw: Any, payload: bytes, seps: bytes) -> bytes:
    import re

    tokens = re.split(b"([" + re.escape(seps) + b"])", payload)
    for _ in range(draw(st.integers(1, 4))):
        k = draw(st.integers(0, len(tokens) - 1))
        tokens[k] = draw(st.sampled_from([
            b"1e309", b"-0", b"NaN", b"inf", b"18446744073709551616", b"9" * 400, b"\x00", b"\xff\xfe", b"\xed\xa0\x80",
            b"x" * 10_000, b"", b"\"", b"\\", b"=", b",", b"\n", b"\r", b"#", b"1i", b"-9223372036854775809i",
            b"99999999999999999999", b"2016-12-31T23:59:60Z", b"\xe2\x80\xae", b" ", b"t", b"1u", b'"a\\"b"',
            b",".join(b"m%d=1" % i for i in range(2000)),
        ]))
    return b"".join(tokens)


@st.composite
def hostile_message(draw: Any, fmt: str, now_s: float) -> bytes:
    """One hostile message of format ``fmt`` (a mutated realistic sample)."""
    n = draw(st.integers(2, 8))
    payload, _ = sample(fmt, draw(st.sampled_from(["s1", "dev-0004A30B", "urn:dev:ow:10e2073a01080063"])), now_s, n)
    if fmt == "senml_cbor":
        return _mutate_cbor(draw, payload, now_s)
    if fmt == "influx_line":
        return _mutate_tokens(draw, payload, b" ,=\n")
    if fmt == "csv":
        return _mutate_tokens(draw, payload, b",\n")
    return _dump(_mutate_tree(draw, json.loads(payload), now_s)).encode("utf-8", "surrogatepass")
