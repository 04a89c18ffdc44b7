"""HTTP ingest's body handling over generated input: framing keeps every message's bytes and
position, inflating never exceeds its limit, and no input raises anything but the answers the
route documents (400 / 413 / 415)."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from urbanpulse.errors import PayloadTooLarge, UnreadableBody, UnsupportedMediaType
from urbanpulse.http_ingest.body import CBOR, JSON, NDJSON, TEXT, framing_of, inflate, split

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=10)


@given(st.lists(json_values, min_size=1, max_size=30), st.sampled_from([",", ", ", ",\n  "]))
def test_a_json_array_splits_into_its_items_as_sent(items: list, sep: str):
    texts = [json.dumps(x) for x in items]
    body = ("[ " + sep.join(texts) + " ]").encode()
    m = split(body, JSON, "json")
    assert m.positions == list(range(len(items)))
    assert [json.loads(p) for p in m.payloads] == items
    assert [p.decode() for p in m.payloads] == texts  # the bytes as sent, not re-serialised


@given(st.binary(max_size=300))
def test_any_json_body_is_split_or_kept_whole_and_never_raises(body: bytes):
    m = split(body, JSON, "json")
    assert len(m.payloads) == len(m.positions) >= 1
    if m.payloads != [body]:  # split: it was a JSON array, and every item is valid JSON on its own
        assert len(json.loads(body)) == len(m.payloads)
        for p in m.payloads:
            json.loads(p)


def test_a_json_array_with_what_msgspec_cannot_read_stays_one_message():
    body = b'[{"value": Infinity}, {"value": 1}]'
    assert split(body, JSON, "json").payloads == [body]  # the format's slow path gives it its reason


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20), max_size=20))
def test_ndjson_and_line_protocol_keep_each_lines_position(lines: list[str]):
    body = "\n".join(lines).encode()
    for framing, fmt in ((NDJSON, "json"), (TEXT, "influx_line")):
        m = split(body, framing, fmt)
        for payload, pos in zip(m.payloads, m.positions):
            assert payload == lines[pos].encode()
        stripped = [line.encode().strip() for line in lines]  # ASCII whitespace only, as on the wire
        kept = {i for i, b in enumerate(stripped) if b and not (framing == TEXT and b.startswith(b"#"))}
        assert set(m.positions) == kept


def test_vendor_bodies_and_cbor_are_one_message():
    for framing, fmt in ((JSON, "ttn_v3"), (JSON, "senml"), (CBOR, "senml_cbor"), (TEXT, "csv")):
        assert split(b"[1, 2]", framing, fmt).payloads == [b"[1, 2]"]


@settings(max_examples=50)
@given(st.binary(max_size=5000), st.integers(min_value=1024, max_value=8192), st.sampled_from(["gzip", "deflate"]))
def test_inflate_returns_the_body_within_the_limit_and_413_beyond(data: bytes, limit: int, enc: str):
    packed = gzip.compress(data) if enc == "gzip" else zlib.compress(data)
    if len(data) <= limit:
        assert inflate(packed, enc, limit) == data
    else:
        with pytest.raises(PayloadTooLarge):
            inflate(packed, enc, limit)


@given(st.binary(max_size=400), st.sampled_from(["gzip", "deflate", "gzip, identity", "identity"]))
def test_inflate_of_garbage_is_400_or_413_never_anything_else(data: bytes, enc: str):
    try:
        out = inflate(data, enc, 4096)
    except (UnreadableBody, PayloadTooLarge):
        return
    assert len(out) <= 4096 or enc == "identity"


def test_a_zip_bomb_stops_at_the_limit():
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))
    assert len(bomb) < 100_000
    with pytest.raises(PayloadTooLarge, match="inflates"):
        inflate(bomb, "gzip", 1024 * 1024)


@given(st.text(max_size=40))
def test_content_types_map_to_a_framing_or_415(ctype: str):
    try:
        framing, media = framing_of(ctype)
    except UnsupportedMediaType as exc:
        assert "Content-Type" in str(exc)
        return
    assert framing in (JSON, NDJSON, CBOR, TEXT, "csv")
    assert media == ctype.split(";", 1)[0].strip().lower() or not ctype.strip()


def test_unknown_content_encoding_is_415():
    with pytest.raises(UnsupportedMediaType):
        inflate(b"x", "br", 1024)
