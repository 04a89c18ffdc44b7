"""The compiled canonical JSON decoder (formats/canonical_compiled.py, formats/_canonical_kernel.py)
gives every message exactly what msgspec's path gives it: the same readings, bit for bit, or the
same rejections, with the same reasons, details, bytes and positions.

The oracle is the format with ``compiled = False`` (msgspec alone, the path before the kernel).
The generator is adversarial on purpose: canonical messages built field by field from raw JSON
text (numbers at the edges of the kernel's exactly-rounded fast path, -0, exponents, strings at
the name-length limits, escapes, control and non-ASCII bytes, every kind of whitespace, unknown,
duplicated and missing keys, nesting, trailing bytes), the same messages with a byte flipped,
inserted, deleted or cut off, ``urbanpulse.fuzz``'s hostile payloads, arrays, empty and
oversized messages — mixed in one batch, so a message the kernel takes sits beside ones it
bails on. The kernel tested is the one the service loads (built ahead of time by the session's
conftest); ``URBANPULSE_KERNELS=jit`` tests its Numba source instead (how mutants were checked).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbanpulse.formats import canonical_compiled
from urbanpulse.formats.base import Decoded, DecodeLimits, MessageBatch
from urbanpulse.formats.canonical import CanonicalJsonFormat, CanonicalOptions
from urbanpulse.fuzz import hostile_payloads
from urbanpulse.model import ReadingColumns
from urbanpulse.pipeline.decode import DecodeStage
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator, TimeRules, Validated

NOW_MS = 1_700_000_000_000
CATALOGUE = MetricCatalogue.load()


@pytest.fixture(scope="module", autouse=True)
def kernel_loaded() -> None:
    """Every test here needs the kernel: without it both sides would be msgspec's path."""
    assert canonical_compiled.load_kernel() is not None, "the compiled JSON decoder did not load"


def oracle(fmt: CanonicalJsonFormat) -> CanonicalJsonFormat:
    old = CanonicalJsonFormat(fmt.limits, CanonicalOptions(ts_unit=fmt.ts_unit))
    old.compiled = False
    return old


# -- raw JSON text, field by field --------------------------------------------------------------

WS = st.sampled_from(["", "", "", " ", "\t", "\n", "\r", " \r\n\t ", "\x0c", "\x0b", "\xa0", "\x00", "\u2028"])
PLAIN = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7F, blacklist_characters='"\\'), max_size=12)
ODD_PIECES = ["\\\"", "\\\\", "\\/", "\\n", "\\u0041", "\\u00e9", "\\ud800", "\\x", "\\", "é", "北", "\x00", "\x1f",
              "\t", "\x7f", "\x80", "\U0001f600"]


@st.composite
def string_body(draw, kind: str = "name") -> str:  # noqa: ANN001
    """The text between a JSON string's quotes: mostly plain ASCII, at times an escape, a raw
    control or non-ASCII character, or a length at the edges of ``model.Name`` (1-128)."""
    pick = draw(st.integers(0, 9))
    if pick == 0:
        return draw(st.sampled_from(["", "x" * 127, "y" * 128, "z" * 129, " lead", "trail ", "a b"]))
    body = draw(PLAIN) or "s"
    if pick == 1:
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.sampled_from(ODD_PIECES)) + body[at:]
    if kind == "metric" and pick >= 5:
        return draw(st.sampled_from([s.name for s in CATALOGUE.specs[:4]] + ["no_such_metric"]))
    if kind == "unit" and pick >= 5:
        return draw(st.sampled_from(["degC", "C", "°C", "%", "hPa", ""]))
    return body


FLOATS = st.floats(allow_nan=False, allow_infinity=False)
NUMBER_LITERALS = ["-0", "0", "-0.0", "0.0", "-0e0", "0e999", "01", "-", "+1", "1.", ".5", "1e", "1e+", "1E5", "1e-22",
                   "1e22", "1e23", "1e-23", "9007199254740992", "9007199254740993", "-9007199254740993",
                   "123456789012345678", "1234567890123456789", "999999999999999999", "1.5e-400", "1e400", "1e999",
                   "NaN", "Infinity", "-Infinity", "0.000000000000000000001", "1" * 400, "1.0e0000", "2.5E-3",
                   "1_000", "0x10", "1.5.3", "--1", "1e1.5",
                   # 17 digits above 2**53: float(m) / 10**k rounds twice and misses the nearest double
                   "29514929935856.118", "-112808637323498.93", "1325566603534034.9", "165716193030814.95"]


@st.composite
def number_text(draw) -> str:  # noqa: ANN001
    """A JSON number (or something shaped like one), often at the edges of the fast path:
    mantissas near 2**53 and of 15-20 digits, decimal exponents near ±22."""
    pick = draw(st.integers(-2, 7))
    if pick <= 0:
        return draw(st.sampled_from(NUMBER_LITERALS))
    if pick == 1:
        return repr(draw(FLOATS))
    if pick == 2:
        x = draw(FLOATS)
        return draw(st.sampled_from([f"{x:.{draw(st.integers(0, 20))}f}", f"{x:.{draw(st.integers(0, 20))}e}",
                                     f"{x:.{draw(st.integers(1, 20))}g}"]))
    if pick == 3:
        return str(draw(st.integers(-(2 ** 64), 2 ** 64)))
    if pick == 4:
        return str(draw(st.integers(2 ** 53 - 4, 2 ** 53 + 4)) * draw(st.sampled_from([1, -1])))
    if pick == 5:  # m . frac e exp around the fast path's limits
        digits = str(draw(st.integers(0, 10 ** draw(st.integers(1, 20)))))
        point = draw(st.integers(0, len(digits)))
        text = digits[:point] + ("." + digits[point:] if point < len(digits) else "")
        text = text if not text.startswith(".") else "0" + text
        if draw(st.booleans()):
            text += draw(st.sampled_from(["e", "E"])) + draw(st.sampled_from(["", "+", "-"])) + \
                str(draw(st.one_of(st.integers(0, 30), st.integers(20, 25))))
        return draw(st.sampled_from(["", "-"])) + text
    if pick == 6:  # an epoch in ms, as the Kafka path sees most
        return str(NOW_MS + draw(st.integers(-40 * 86_400_000, 3_600_000)))
    return repr(round(draw(st.floats(-100, 100)), draw(st.integers(0, 3))))


def value_text(kind: str):  # noqa: ANN201 - a strategy
    """Raw JSON for field ``kind``: mostly what the field takes, at times any other JSON."""
    usual = {"sensor_id": string_body("name").map(lambda s: f'"{s}"'),
             "metric": string_body("metric").map(lambda s: f'"{s}"'),
             "ts": st.one_of(number_text(), st.sampled_from(['"2023-11-14T22:13:20Z"', '"2023-11-14T22:13:20"'])),
             "value": st.one_of(number_text(), st.just("null")),
             "lat": st.one_of(number_text(), st.just("null")), "lon": st.one_of(number_text(), st.just("null")),
             "unit": st.one_of(string_body("unit").map(lambda s: f'"{s}"'), st.just("null"))}[kind]
    other = st.sampled_from(["null", "true", "false", "nul", "nulls", "{}", "[]", '{"a": 1}', "[1, 2]", '""', '"7"',
                             "1", "-1.5", '{"a": {"b": [[[]]]}}'])
    return st.one_of(usual, usual, usual, usual, usual, usual, usual, other)


KEYS = ["sensor_id", "metric", "ts", "value", "lat", "lon", "unit"]
ODD_KEYS = ["extra", "Sensor_id", "sensor_id ", "sensor\\u005fid", "", "tss", "valu", "\\u0074s", "unité"]


@st.composite
def reading_object(draw) -> str:  # noqa: ANN001
    """One reading object as raw JSON text: its keys in any order, at times one missing, one
    unknown or one repeated, and any whitespace between tokens."""
    keys = ["sensor_id", "metric", "ts", "value"] + [k for k in ("lat", "lon", "unit") if draw(st.booleans())]
    if draw(st.integers(0, 7)) == 0:
        keys.remove(draw(st.sampled_from(keys)))
    if draw(st.integers(0, 7)) == 0:
        keys.append(draw(st.sampled_from(KEYS)))  # a duplicate, usually
    pairs = [(k, draw(value_text(k))) for k in keys]
    if draw(st.integers(0, 7)) == 0:
        pairs.append((draw(st.sampled_from(ODD_KEYS)), draw(value_text("value"))))
    pairs = draw(st.permutations(pairs))
    ws = lambda: draw(WS)  # noqa: E731
    body = ",".join(f'{ws()}"{k}"{ws()}:{ws()}{v}{ws()}' for k, v in pairs)
    return f"{ws()}{{{body}}}{ws()}"


def canonical(i: int) -> bytes:
    """The benchmark's message shape (benchmarks/ingest.py): what the Kafka path sees most."""
    value = ((i * 7919) % 800 - 200) / 10 if i % 100 != 99 else 1e6
    return (f'{{"sensor_id":"sensor-{i % 2000:04d}","metric":"temperature","ts":{NOW_MS - 60_000 + i},'
            f'"value":{value!r}}}').encode()


def mutate(draw, data: bytes) -> bytes:  # noqa: ANN001
    """``data`` with one byte flipped, inserted or deleted, or cut short."""
    if not data:
        return data
    at = draw(st.integers(0, len(data) - 1))
    how = draw(st.integers(0, 3))
    if how == 0:
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    if how == 1:
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at:]
    if how == 2:
        return data[:at] + data[at + 1:]
    return data[:at]


@st.composite
def message(draw) -> bytes:  # noqa: ANN001
    kind = draw(st.integers(0, 11))
    if kind <= 3:
        return draw(reading_object()).encode("utf-8", "surrogatepass")
    if kind <= 5:
        return canonical(draw(st.integers(0, 10_000)))
    if kind == 6:
        return mutate(draw, canonical(draw(st.integers(0, 10_000))))
    if kind == 7:
        return mutate(draw, draw(reading_object()).encode("utf-8", "surrogatepass"))
    if kind == 8:
        return ("[" + ",".join(draw(st.lists(reading_object(), min_size=0, max_size=3))) + "]").encode("utf-8")
    if kind == 9:
        return draw(hostile_payloads(NOW_MS, max_size=1))[0]
    if kind == 10:
        return draw(st.sampled_from([b"", b" ", b"{}", b"null", b"\xef\xbb\xbf" + canonical(1), canonical(2) + b"\x00",
                                     canonical(3) + canonical(4), canonical(5)[:-1], canonical(6) * 3]))
    return draw(st.binary(max_size=40))


batches = st.one_of(st.lists(message(), min_size=1, max_size=14),
                    st.lists(st.integers(0, 10_000).map(canonical), min_size=1, max_size=14))


def batch_of(payloads: list[bytes]) -> MessageBatch:
    n = len(payloads)
    return MessageBatch(source="kafka", payloads=payloads, topics=["city"] * n, partitions=[1] * n,
                        offsets=list(range(100, 100 + n)), received_ns=NOW_MS * 1_000_000,
                        lanes=np.zeros(n, np.int16))


# -- comparisons --------------------------------------------------------------------------------

ARRAYS = ("ts_us", "value", "lat", "lon", "msg", "item", "has_null_value", "flags", "lane")


def assert_columns_identical(a: ReadingColumns, b: ReadingColumns) -> None:
    """Equal lists (and their items' types), arrays of equal dtype and equal bytes (NaN's bits too)."""
    for name in ("sensor_id", "metric", "unit"):
        x, y = getattr(a, name), getattr(b, name)
        assert x == y and list(map(type, x)) == list(map(type, y)), name
    for name in ARRAYS:
        x, y = np.ascontiguousarray(getattr(a, name)), np.ascontiguousarray(getattr(b, name))
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), name


def rejections_of(rejections: list) -> list[tuple]:
    return [(r.reason, r.detail, r.payload, r.source, r.topic, r.partition, r.offset, r.item) for r in rejections]


def assert_decoded_identical(new_fmt: CanonicalJsonFormat, old_fmt: CanonicalJsonFormat, batch: MessageBatch,
                             new: Decoded, old: Decoded) -> None:
    assert_columns_identical(new.columns, old.columns)
    assert rejections_of(new.rejections) == rejections_of(old.rejections)
    for k in range(len(new.columns)):  # the bytes a rejected reading would be quarantined with
        assert new_fmt.raw_of(batch, new, k) == old_fmt.raw_of(batch, old, k)


def assert_validated_identical(new: Validated, old: Validated) -> None:
    assert_columns_identical(new.readings, old.readings)
    assert rejections_of(new.rejections) == rejections_of(old.rejections)


# -- the property -------------------------------------------------------------------------------

@settings(max_examples=600, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(payloads=batches, ts_unit=st.sampled_from(["ms", "ms", "s", "auto"]),
       max_bytes=st.sampled_from([256 * 1024, 256 * 1024, 90]))
def test_every_message_comes_out_as_msgspecs_path_makes_it(payloads: list[bytes], ts_unit: str, max_bytes: int) -> None:
    """Decoded (columns, rejections, quarantine bytes) and validated (stored readings,
    quarantine) alike, for any mix of messages the kernel takes and messages it bails on."""
    new_fmt = CanonicalJsonFormat(DecodeLimits(max_payload_bytes=max_bytes), CanonicalOptions(ts_unit=ts_unit))
    old_fmt = oracle(new_fmt)
    batch = batch_of(payloads)
    assert_decoded_identical(new_fmt, old_fmt, batch, new_fmt.decode(batch), old_fmt.decode(batch))
    clock = lambda: NOW_MS / 1000  # noqa: E731
    new = DecodeStage(new_fmt, ReadingValidator(CATALOGUE, TimeRules(), clock=clock), None).decode(batch)
    old = DecodeStage(old_fmt, ReadingValidator(CATALOGUE, TimeRules(), clock=clock), None).decode(batch)
    assert_validated_identical(new, old)
    # every message accounted for: stored or quarantined, none lost
    assert {r.offset for r in new.rejections} | {100 + int(m) for m in new.readings.msg} == \
        set(range(100, 100 + len(payloads)))


@settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(numbers=st.lists(st.tuples(number_text(), number_text(), number_text(), number_text()), min_size=1, max_size=8))
def test_numbers_come_out_as_msgspec_reads_them(numbers: list[tuple[str, str, str, str]]) -> None:
    """Numbers alone, as ts, value, lat and lon of otherwise canonical readings: the fast path's
    edges (2**53, 18 digits, exponents ±22 and beyond, -0 and -0.0) come out as msgspec's."""
    payloads = [f'{{"sensor_id":"s","metric":"temperature","ts":{t},"value":{v},"lat":{a},"lon":{o}}}'.encode()
                for t, v, a, o in numbers]
    new_fmt = CanonicalJsonFormat()
    batch = batch_of(payloads)
    assert_decoded_identical(new_fmt, oracle(new_fmt), batch, new_fmt.decode(batch), oracle(new_fmt).decode(batch))


@st.composite
def repeated_keys(draw) -> list[tuple[str, str]]:  # noqa: ANN001
    """A canonical reading's pairs plus repeats of its keys (with any value: null after a
    number, a number after null ...), at times a key dropped or an unknown one added, shuffled."""
    pairs = [("sensor_id", '"s-1"'), ("metric", '"temperature"'), ("ts", str(NOW_MS)), ("value", "21.5")]
    pairs += draw(st.lists(st.sampled_from(KEYS).flatmap(lambda k: st.tuples(st.just(k), value_text(k))),
                           min_size=1, max_size=5))
    if draw(st.integers(0, 5)) == 0:
        pairs.pop(draw(st.integers(0, 3)))
    if draw(st.integers(0, 5)) == 0:
        pairs.append((draw(st.sampled_from(ODD_KEYS)), "1"))
    return draw(st.permutations(pairs))


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(fields=st.lists(repeated_keys(), min_size=1, max_size=8))
def test_keys_come_out_as_msgspec_reads_them(fields: list[list[tuple[str, str]]]) -> None:
    """Objects whose keys repeat (msgspec keeps the last), go missing or are unknown."""
    payloads = [("{" + ",".join(f'"{k}":{v}' for k, v in pairs) + "}").encode("utf-8", "surrogatepass")
                for pairs in fields]
    new_fmt = CanonicalJsonFormat()
    batch = batch_of(payloads)
    assert_decoded_identical(new_fmt, oracle(new_fmt), batch, new_fmt.decode(batch), oracle(new_fmt).decode(batch))


# -- what the kernel takes (so that the property above does not pass by bailing on everything) --

TAKEN = [canonical(0), canonical(99), canonical(1234),
         b' {\t"metric" : "pm25" ,\n"ts":1700000000000.5 ,"value":null,"sensor_id":"s"}\r\n',
         b'{"sensor_id":"a","metric":"b","ts":-0,"value":-0.0,"lat":52.5,"lon":-1.25e1,"unit":"ug/m3"}',
         b'{"sensor_id":"a","metric":"b","ts":1E3,"value":2.5e-3,"lat":null,"lon":null,"unit":null}',
         b'{"sensor_id":"' + b"x" * 128 + b'","metric":"\x7f","ts":9007199254740992,"value":1e22,"unit":""}',
         b'{"sensor_id":"a","metric":"b","ts":1234567890123456,"value":0.00000000000000001}']
BAILED = [b"", b"{}", b"[]", b"null", b"[" + canonical(0) + b"]", canonical(0) + b"x", b" " + canonical(0)[:-1],
          canonical(0).replace(b'"temperature"', b'"temp\\u0065rature"'),
          canonical(0).replace(b'"temperature"', b'"temp\\\\rature"'),
          canonical(0).replace(b"sensor-", "séñsor-".encode()),
          canonical(0).replace(b"sensor-", b"sen\x1fsor-"),
          canonical(0).replace(b'"value"', b'"extra":1,"value"'),
          canonical(0).replace(b'"value"', b'"ts":1,"value"'),
          canonical(0).replace(b'"metric":"temperature",', b""),
          canonical(0).replace(b'"sensor-0000"', b'"' + b"x" * 129 + b'"'),
          canonical(0).replace(b'"sensor-0000"', b'""'),
          b'{"sensor_id":"a","metric":"b","ts":"2023-11-14T22:13:20Z","value":1}',
          b'{"sensor_id":"a","metric":"b","ts":1,"value":1e23}',
          b'{"sensor_id":"a","metric":"b","ts":1,"value":9007199254740993}',
          b'{"sensor_id":"a","metric":"b","ts":1,"value":1234567890123456789}',
          b'{"sensor_id":"a","metric":"b","ts":1,"value":NaN}',
          b'{"sensor_id":"a","metric":"b","ts":1,"value":01}',
          b'{"sensor_id":"a","metric":"b","ts":1,"value":1.}',
          b'{"sensor_id":"a","metric":"b","ts":1,"value":{"x":1}}',
          b'{"sensor_id":"a","metric":"b","ts":1,"value":true}',
          b'{"sensor_id":"a","metric":"b","ts":null,"value":1}',
          b'{"sensor_id":"a","metric":"b","ts":1,"value":1,"unit":5}',
          b'\x0c{"sensor_id":"a","metric":"b","ts":1,"value":1}',
          b'{"sensor_id":"a","metric":"b","ts":1,"value":1,}']


def statuses(payloads: list[bytes]) -> list[int]:
    mod = canonical_compiled.kernel()
    assert mod is not None
    got = canonical_compiled._call(mod, payloads, 256 * 1024)  # noqa: SLF001
    assert got is not None
    return got[2][canonical_compiled.I_STATUS].tolist()


def test_the_kernel_takes_canonical_readings_and_bails_on_the_unusual() -> None:
    assert all(s != canonical_compiled.BAIL for s in statuses(TAKEN)), statuses(TAKEN)
    assert statuses(BAILED) == [canonical_compiled.BAIL] * len(BAILED)
    mixed = [TAKEN[0], BAILED[5], TAKEN[3], BAILED[9]]
    assert statuses(mixed) == [canonical_compiled.TAKEN, 0, canonical_compiled.TAKEN_NULL, 0]


def test_taken_and_bailed_messages_decode_as_msgspec_alone() -> None:
    """The hand-picked cases above through the comparison of the property, all in one batch too."""
    new_fmt = CanonicalJsonFormat()
    old_fmt = oracle(new_fmt)
    for payloads in [TAKEN, BAILED, [m for pair in zip(TAKEN, BAILED) for m in pair]]:
        batch = batch_of(payloads)
        assert_decoded_identical(new_fmt, old_fmt, batch, new_fmt.decode(batch), old_fmt.decode(batch))


def test_a_batch_of_distinct_names_gets_one_string_per_name() -> None:
    """One str object per distinct sensor id and metric of a batch (the point of the string
    table), equal to msgspec's strings."""
    payloads = [canonical(i) for i in range(4000)]
    decoded = CanonicalJsonFormat().decode(batch_of(payloads))
    cols = decoded.columns
    assert len({id(s) for s in cols.sensor_id}) == 2000 and len({id(m) for m in cols.metric}) == 1
    assert cols.sensor_id[:3] == ["sensor-0000", "sensor-0001", "sensor-0002"]


def test_the_python_side_agrees_with_the_kernel_on_its_layout() -> None:
    from urbanpulse.formats import _canonical_kernel as k

    cc = canonical_compiled
    assert (cc.FLOAT_ROWS, cc.INT_ROWS, cc.STRINGS_PER_MESSAGE) == (k.FLOAT_ROWS, k.INT_ROWS, k.STRINGS_PER_MESSAGE)
    assert (cc.F_TS_US, cc.F_VALUE, cc.F_LAT, cc.F_LON) == (k.F_TS_US, k.F_VALUE, k.F_LAT, k.F_LON)
    assert (cc.I_STATUS, cc.I_SENSOR, cc.I_METRIC, cc.I_UNIT) == (k.I_STATUS, k.I_SENSOR, k.I_METRIC, k.I_UNIT)
    assert (cc.BAIL, cc.TAKEN, cc.TAKEN_NULL, cc.S_START, cc.S_LEN) == (k.BAIL, k.TAKEN, k.TAKEN_NULL, k.S_START,
                                                                         k.S_LEN)
    assert all(cc.table_size(n) == k.table_size(n) for n in (0, 1, 2, 3, 1000, 60_000))
    from urbanpulse.model import Name

    assert k.NAME_MAX == Name.__metadata__[0].max_length


def test_tables_too_small_are_refused_not_overrun() -> None:
    """The kernel checks the sizes it is given (a compiled function trusts its arguments)."""
    mod = canonical_compiled.kernel()
    data = np.frombuffer(canonical(0) * 2, np.uint8)
    ends = np.array([len(data) // 2, len(data)], np.int64)
    floats, ints = np.empty((4, 2)), np.empty((4, 2), np.int64)
    assert mod.decode_objects(data, ends, 1024, floats, ints, np.empty((2, 5), np.int64),
                              np.empty(canonical_compiled.table_size(2), np.int64)) == -1
    assert mod.decode_objects(data, ends, 1024, floats, ints, np.empty((2, 6), np.int64),
                              np.empty(8, np.int64)) == -1
    assert mod.decode_objects(data, ends, 1024, floats, ints, np.empty((2, 6), np.int64),
                              np.empty(canonical_compiled.table_size(2), np.int64)) == 2


def test_payloads_that_are_not_bytes_take_msgspecs_path() -> None:
    """A str or a memoryview of wider items cannot be joined byte for byte: no kernel call."""
    mod = canonical_compiled.kernel()
    assert canonical_compiled._call(mod, [canonical(0), "text"], 1024) is None  # noqa: SLF001
    wide = memoryview(np.zeros(4, np.int32).tobytes()).cast("i")
    assert canonical_compiled._call(mod, [canonical(0), wide], 1024) is None  # noqa: SLF001
    out = CanonicalJsonFormat().decode(batch_of([canonical(0), bytearray(canonical(1))]))
    assert len(out.columns) == 2 and not out.rejections
    assert json.loads(canonical(1))["sensor_id"] == out.columns.sensor_id[1]


def test_a_failing_kernel_call_leaves_the_batch_to_msgspec(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the compiled call itself fail (it is not expected to), the batch is decoded by
    msgspec's path as a whole: no message is quarantined for it."""
    def broken(*_args: object) -> object:
        raise TypeError("built for a writeable array")

    monkeypatch.setattr(canonical_compiled, "_call", broken)
    payloads = [canonical(0), canonical(99), b"{"]
    new_fmt = CanonicalJsonFormat()
    batch = batch_of(payloads)
    assert_decoded_identical(new_fmt, oracle(new_fmt), batch, new_fmt.decode(batch), oracle(new_fmt).decode(batch))
    assert len(new_fmt.decode(batch).columns) == 2
