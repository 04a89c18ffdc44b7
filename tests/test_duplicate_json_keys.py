"""A JSON object that sends a key twice is quarantined as ``duplicate_key``, never half-read (product47).

Before: ``{"value": 21.5, "value": 99}`` stored 99, and 21.5 was neither stored nor quarantined, in every
JSON format (msgspec and ``json.loads`` keep the last member). Property, per JSON format, over realistic
messages (urbanpulse.testing.samples) with one member of one of their objects sent twice (the other copy
first or last, its key spelled as sent or with a ``\\u`` escape, with or without spaces): the record holding
it (an array item of a canonical array or a SenML pack, else the message) gives no reading and exactly one
``duplicate_key`` rejection, its bytes as sent, its detail naming the key; every other record gives the
readings it gives undamaged, or (SenML, a base field sent twice) is rejected, never silently dropped.
"""

from __future__ import annotations

import json
import time

from hypothesis import given, settings, strategies as st

from urbanpulse.formats.base import MessageBatch
from urbanpulse.plugins import build_format
from urbanpulse.testing.samples import sample

FORMATS = ["json", "senml", "ttn_v3", "chirpstack_v4", "owntracks", "sensor_community"]
ARRAYS = {"json", "senml"}  # a top-level array's items are records of their own
T0 = time.time() - 120


def _objects(node: object, out: list) -> list:
    if isinstance(node, dict):
        if node:
            out.append(node)
        for v in node.values():
            _objects(v, out)
    elif isinstance(node, list):
        for v in node:
            _objects(v, out)
    return out


def _other(value: object) -> object:
    if isinstance(value, bool) or value is None:
        return 7
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    return 7


def _write(node: object, target: int, key: str, first: bool, escaped: bool, space: str) -> str:
    """``node`` as JSON text, the member ``key`` of the object whose id is ``target`` sent twice."""
    if isinstance(node, dict):
        members = []
        for k, v in node.items():
            text = json.dumps(k) + ":" + space + _write(v, target, key, first, escaped, space)
            if id(node) == target and k == key:
                spelled = ('"\\u%04x' % ord(k[0]) + json.dumps(k)[2:]) if escaped else json.dumps(k)
                twin = spelled + space + ":" + json.dumps(_other(v))
                text = f"{twin},{space}{text}" if first else f"{text},{space}{twin}"
            members.append(text)
        return "{" + ("," + space).join(members) + "}"
    if isinstance(node, list):
        return "[" + ("," + space).join(_write(v, target, key, first, escaped, space) for v in node) + "]"
    return json.dumps(node)


def _decode(fmt_name: str, payload: bytes):  # noqa: ANN202
    fmt = build_format(fmt_name, None)
    topic = "owntracks/u/d" if fmt_name == "owntracks" else "t"
    return fmt.decode(MessageBatch("mqtt", [payload], topics=[topic], received_ns=int(T0 * 1e9)))


def _per_record(decoded) -> dict[int, list]:  # noqa: ANN001
    out: dict[int, list] = {}
    for k in range(len(decoded.columns)):
        item = int(decoded.columns.item[k])
        out.setdefault(item, []).append((decoded.columns.metric[k], float(decoded.columns.value[k])))
    return out


@st.composite
def damaged(draw):  # noqa: ANN001, ANN201
    fmt_name = draw(st.sampled_from(FORMATS))
    n = draw(st.integers(1, 3))
    payload, _ = sample(fmt_name, "sensor-1", T0, n)
    parsed = json.loads(payload)
    if fmt_name == "json" and draw(st.booleans()):
        parsed = parsed[0]  # a single reading object
    objects = _objects(parsed, [])
    target = draw(st.sampled_from(objects))
    key = draw(st.sampled_from(sorted(target)))
    first, escaped = draw(st.booleans()), draw(st.booleans())
    space = draw(st.sampled_from(["", " ", "\n  "]))
    record = None
    if fmt_name in ARRAYS and isinstance(parsed, list):
        record = next(j for j, item in enumerate(parsed) if any(o is target for o in _objects(item, [])))
        items = [_write(item, id(target), key, first, escaped, space) for item in parsed]
        text = "[" + ("," + space).join(items) + "]"
        sent = items[record].encode()
    else:
        text = _write(parsed, id(target), key, first, escaped, space)
        sent = text.encode()
    undamaged = _write(parsed, -1, key, first, escaped, space).encode()
    return fmt_name, text.encode(), undamaged, -1 if record is None else record, sent, key


@settings(max_examples=300, deadline=None)
@given(case=damaged())
def test_a_key_sent_twice_quarantines_its_record_as_sent_and_keeps_the_others(case) -> None:  # noqa: ANN001
    fmt_name, payload, undamaged, record, sent, key = case
    got = _decode(fmt_name, payload)
    dup = [r for r in got.rejections if r.reason.value == "duplicate_key"]
    assert [(r.item, r.payload) for r in dup] == [(record, sent)], (payload, got.rejections)
    assert json.dumps(key) in dup[0].detail
    readings = _per_record(got)
    assert record not in readings, readings
    if record == -1:
        assert not readings  # the message is the record
        return
    rejected = {r.item for r in got.rejections}
    for item, before in _per_record(_decode(fmt_name, undamaged)).items():
        if item != record:
            assert readings.get(item) == before or item in rejected, (item, before, readings.get(item))


def test_the_brief_example_is_quarantined_not_stored_as_99() -> None:
    ms = int(T0 * 1000)
    payload = b'{"sensor_id":"s1","metric":"temperature","ts":%d,"value": 21.5, "value": 99}' % ms
    got = _decode("json", payload)
    assert len(got.columns) == 0
    assert [(r.reason.value, r.item, r.payload) for r in got.rejections] == [("duplicate_key", -1, payload)]
    assert '"value"' in got.rejections[0].detail


@settings(max_examples=100, deadline=None)
@given(fmt_name=st.sampled_from(FORMATS), n=st.integers(1, 4), space=st.sampled_from(["", " ", "\n"]))
def test_a_message_without_repeats_is_decoded_as_before(fmt_name: str, n: int, space: str) -> None:
    """No key twice (with spaces, escapes of other characters): no ``duplicate_key``, every reading kept."""
    payload, _ = sample(fmt_name, "sensor-\u00e9", T0, n)
    text = _write(json.loads(payload), -1, "", False, False, space)
    got = _decode(fmt_name, text.encode())
    assert not [r for r in got.rejections if r.reason.value == "duplicate_key"]
    assert len(got.columns) == len(_decode(fmt_name, payload).columns) > 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(value=json_values, limit=st.integers(1, 6))
def test_the_one_walk_agrees_with_the_depth_check_and_counts_the_quotes_sent(value: object, limit: int) -> None:
    """``depth_and_quotes`` (one walk for the depth limit and the quote count) says "too deep" exactly where
    ``depth_exceeds`` does, and otherwise counts the quote characters of the value's JSON text (where it holds no backslash)."""
    from urbanpulse.formats.base import depth_and_quotes, depth_exceeds

    got = depth_and_quotes(value, limit)
    assert (got < 0) == depth_exceeds(value, limit)
    text = json.dumps(value, ensure_ascii=False)
    if got >= 0 and "\\" not in text:  # with a backslash the text is always scanned (duplicate_keys.may_repeat)
        assert got == text.count('"')


def test_clean_batches_keep_their_fast_paths() -> None:
    """The check must not send the usual batch to the per-message path (the good path's speed): realistic
    canonical arrays and SenML packs of 50 sensors are still decoded whole by ``_decode_clean`` / ``_decode_fast``."""
    for fmt_name, fast in (("json", "_decode_clean"), ("senml", "_decode_fast")):
        fmt = build_format(fmt_name, None)
        payloads = [sample(fmt_name, f"sensor-{k}", T0, 20)[0] for k in range(50)]
        got = getattr(fmt, fast)(MessageBatch("mqtt", payloads, topics=["t"] * 50))
        assert got is not None and len(got.columns) == 1000, fmt_name


@st.composite
def canonical_messages(draw):  # noqa: ANN001, ANN201
    """A canonical reading or array of them with extra keys, explicit nulls, text or number times, spaces,
    and maybe one field of the seven (or an ignored key) sent twice; returns (bytes, [(item, repeated field)])."""
    ms = int(T0 * 1000)
    items, repeats = [], []
    n = draw(st.integers(1, 4))
    for j in range(n):
        members = [("sensor_id", '"s1"'), ("metric", '"temperature"'),
                   ("ts", draw(st.sampled_from([str(ms - j), '"2026-12-05T12:00:00Z"'.replace("2026-12-05T12:00:00Z",
                                                 time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 - j)))]))),
                   ("value", draw(st.sampled_from(["21.5", "null", "3"])))]
        for key in draw(st.lists(st.sampled_from(["lat", "lon", "unit", "note", "extra"]), unique=True, max_size=3)):
            members.append((key, draw(st.sampled_from({"lat": ["null", "51.5"], "lon": ["null", "-0.1"],
                                                       "unit": ["null", '"degC"'], "note": ['"value"', "1", "null"],
                                                       "extra": ['{"value": 1}', "[1, 2]"]}[key]))))
        twice = draw(st.sampled_from([None, None, "value", "ts", "lat", "note", "metric"]))
        if twice is not None and any(k == twice for k, _ in members):
            k = next(i for i, (key, _) in enumerate(members) if key == twice)
            members.insert(draw(st.integers(0, len(members))), (twice, members[k][1]))
            if twice != "note":
                repeats.append((j if n > 1 else -1, twice))
        members = draw(st.permutations(members))
        sp = draw(st.sampled_from(["", " "]))
        items.append("{" + ("," + sp).join(f'"{k}":{sp}{v}' for k, v in members) + "}")
    text = ("[" + ",".join(items) + "]") if n > 1 else items[0]
    return text.encode(), repeats


@settings(max_examples=200, deadline=None)
@given(messages=st.lists(canonical_messages(), min_size=1, max_size=4), broken=st.booleans())
def test_canonical_readings_repeating_a_field_are_quarantined_on_every_path(messages, broken) -> None:  # noqa: ANN001
    """A reading that sends one of the seven canonical fields twice is ``duplicate_key`` and nothing else is,
    whether its batch is decoded whole, message by message, or beside a broken message (the slow path): extra
    keys (a repeated one too), explicit nulls and text times cost the check a second look, never the outcome."""
    payloads = [p for p, _ in messages] + ([b'{"sensor_id": "s1", "value": NaN}'] if broken else [])
    batch = MessageBatch("mqtt", payloads, topics=["t"] * len(payloads), offsets=list(range(len(payloads))))
    got = build_format("json", None).decode(batch)
    dup = sorted((r.offset, r.item) for r in got.rejections if r.reason.value == "duplicate_key")
    want = sorted({(m, item) for m, (_, repeats) in enumerate(messages) for item, _ in repeats})
    assert dup == want, (payloads, got.rejections)
    alone = [build_format("json", None).decode(MessageBatch("mqtt", [p], topics=["t"])) for p, _ in messages]
    for m, one in enumerate(alone):
        assert sorted(r.item for r in one.rejections if r.reason.value == "duplicate_key") == \
            sorted({item for item, _ in messages[m][1]})
