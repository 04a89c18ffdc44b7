"""Hostile HTTP ingest requests through the running service on real PostgreSQL (ingest42).

The body handling has unit properties (test_http_ingest_body.py, test_hostile_http_size.py) and the
decoders have theirs (test_fuzz_decode.py, test_hostile_format_mutations.py). What no test did
was send generated hostile *requests* to ``urbanpulse run`` and account for each one in the
database. Each request here mixes what an outsider sends: arrays that mix valid readings with bad
items (strings, ``1e400``, ``NaN`` / ``Infinity`` literals, integers past int64, duplicate keys,
deep nesting, bytes that are not UTF-8, lone surrogates, non-objects), bodies that are truncated,
empty, deeply nested, larger than ``api.max_body_bytes``, gzip / deflate bodies (good, corrupt,
truncated, bombs), wrong Content-Type / Content-Encoding, and clients that send slowly or give up
half-way. Meanwhile one client holds a connection open with half a body sent. For every request:

- never a 5xx, never a hang (a bounded wait), and the service keeps serving;
- a 4xx leaves nothing: no reading, no quarantine row, and its answer says why;
- a 200 is exact: readings added == ``stored``, quarantine rows added == ``rejected``, and for
  the canonical framings every message has at least one outcome; every valid reading sent is
  stored or its bytes are in a quarantine row (never lost), nothing but a valid reading is stored,
  and where each valid reading is a message of its own (NDJSON written out) each is stored.
"""

from __future__ import annotations

import gzip
import os
import socket
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, Phase, event, example, given, note, settings, strategies as st

from service_process import ServiceProcess, db_value

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_BODY = 256 * 1024
MAX_INFLATED = 1024 * 1024
NOW_MS = int(time.time() * 1000) - 3_600_000
#: the longest any one request may take before it counts as a hang (a slow client's own pauses included)
REQUEST_TIMEOUT_S = 30.0
EXAMPLES = int(os.environ.get("HTTP_HOSTILE_EXAMPLES", "40"))
#: each example costs a request to a running service: a failure is reported as drawn, not shrunk
NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]


@dataclass
class Request:
    """One generated request: its body, its headers, and the readings it holds that are valid."""

    body: bytes
    headers: dict[str, str]
    valid: dict[str, bytes] = field(default_factory=dict)  # the valid readings in it: sensor id -> bytes
    sensors: list[str] = field(default_factory=list)  # every sensor id it names
    canonical: bool = True  # framed as canonical JSON / NDJSON: one reading or one rejection per message
    pace: tuple[int, float] | None = None  # (chunks, seconds between them): a slow client
    chunked: bool = False  # Transfer-Encoding: chunked, no Content-Length (the body limit is found as it comes)
    path: str = "/ingest"
    abandon: bool = False  # the client sends part of the body and goes away
    drawn: list[str] = field(default_factory=list)  # what was drawn, for the failure report
    exact: bool = False  # each valid reading is a message of its own: it must be stored, not only kept


# -- items --------------------------------------------------------------------------------------

def _reading(sensor: str, k: int, value: bytes = b"21.5", extra: bytes = b"") -> bytes:
    return (b'{"sensor_id":"' + sensor.encode() + b'","metric":"temperature","ts":' + str(NOW_MS + k).encode()
            + b',"value":' + value + extra + b"}")


def _item(kind: str, sensor: str, k: int) -> tuple[bytes, bool]:
    """(bytes of one array item / NDJSON line, whether it is a valid reading)."""
    bad: dict[str, bytes] = {
        "text_value": _reading(sensor, k, b'"hot"'),
        "inf_literal": _reading(sensor, k, b"1e400"),
        "neg_inf_literal": _reading(sensor, k, b"-1e999"),
        "nan_token": _reading(sensor, k, b"NaN"),
        "infinity_token": _reading(sensor, k, b"Infinity"),
        "int_past_int64": _reading(sensor, k, str(2 ** 70).encode()),
        "ts_past_int64": b'{"sensor_id":"' + sensor.encode() + b'","metric":"temperature","ts":'
                         + str(2 ** 64 + 5).encode() + b',"value":1}',
        "ts_negative": b'{"sensor_id":"' + sensor.encode() + b'","metric":"temperature","ts":-9223372036854775809,'
                       b'"value":1}',
        "many_digits": _reading(sensor, k, b"1" + b"0" * 400 + b".5"),
        "dup_key": _reading(sensor, k, b"1", b',"value":"x"'),
        "nested": _reading(sensor, k, b"[" * 40 + b"1" + b"]" * 40),
        "not_utf8": b'{"sensor_id":"' + sensor.encode() + b'\xff\xfe","metric":"temperature","ts":'
                    + str(NOW_MS + k).encode() + b',"value":1}',
        "lone_surrogate": b'{"sensor_id":"' + sensor.encode() + b'\\ud800","metric":"temperature","ts":'
                          + str(NOW_MS + k).encode() + b',"value":1}',
        "nul_in_id": b'{"sensor_id":"' + sensor.encode() + b'\\u0000","metric":"temperature","ts":'
                     + str(NOW_MS + k).encode() + b',"value":1}',
        "missing": b'{"sensor_id":"' + sensor.encode() + b'","metric":"temperature"}',
        "number": b"12345",
        "null": b"null",
        "string": b'"' + sensor.encode() + b'"',
        "empty_object": b"{}",
        "long_id": _reading(sensor + "x" * 300, k),
    }
    if kind == "valid":
        return _reading(sensor, k), True
    if kind == "list":  # a message that is an array holding one reading: that reading is valid
        return b"[" + _reading(sensor, k) + b"]", True
    return bad[kind], False


#: where the body goes: the canonical route, and vendor formats that read the same bytes their own way
PATHS = ["/ingest"] * 8 + ["/ingest/json", "/ingest/senml", "/ingest/ttn", "/ingest/chirpstack?event=up",
         "/ingest/owntracks", "/ingest/sensor_community", "/ingest/influx", "/ingest/csv"]

ITEM_KINDS = ["valid", "text_value", "inf_literal", "neg_inf_literal", "nan_token", "infinity_token",
              "int_past_int64", "ts_past_int64", "ts_negative", "many_digits", "dup_key", "nested", "not_utf8",
              "lone_surrogate", "nul_in_id", "missing", "number", "null", "string", "list", "empty_object", "long_id"]

# -- requests -----------------------------------------------------------------------------------


@st.composite
def requests(draw: st.DrawFn, tag: Callable[[], str]) -> Request:
    """A hostile request: a framing of generated items, then maybe an encoding, a truncation, a
    wrong header, a slow or vanishing client."""
    prefix = tag()
    kinds = draw(st.lists(st.sampled_from(ITEM_KINDS), min_size=1, max_size=12))
    items = [_item(kind, f"{prefix}-{k}", k) for k, kind in enumerate(kinds)]
    framing = draw(st.sampled_from(["array", "ndjson", "array", "ndjson", "object", "deep", "huge", "empty"]))
    req = _framed(framing, items, prefix, draw)
    req.sensors = [f"{prefix}-{k}" for k in range(len(items))] + [prefix]
    encoding = draw(st.sampled_from(["identity"] * 4 + ["gzip", "deflate", "gzip_truncated", "gzip_corrupt",
                                                        "gzip_bomb", "gzip_twice", "unknown"]))
    _encode(req, encoding)
    header = draw(st.sampled_from(["as_framed"] * 4 + ["none", "text", "foreign", "charset", "plus_json"]))
    _headers(req, header)
    cut = draw(st.integers(0, 999)) if draw(st.integers(0, 5)) == 0 else None
    if cut is not None:  # truncated (Content-Length says the bytes sent): a reading cut off is no longer sent
        req.body = req.body[:len(req.body) * cut // 1000]
        req.valid = {k: b for k, b in req.valid.items() if encoding != "identity" or b in req.body}
    req.path = draw(st.sampled_from(PATHS))
    if req.path != "/ingest":  # another format's reading of the same bytes: accounted, nothing assumed valid
        req.canonical, req.valid = req.path == "/ingest/json" and req.canonical, {}
    client = draw(st.sampled_from(["plain"] * 4 + ["slow", "abandon", "chunked", "chunked_abandon"]))
    req.drawn = [f"kinds={kinds}", f"framing={framing}", f"encoding={encoding}", f"header={header}", f"cut={cut}",
                 f"client={client}", f"path={req.path}", f"headers={req.headers}", f"body[:300]={req.body[:300]!r}"]
    if client == "slow":
        req.pace = (draw(st.integers(2, 4)), 0.3)
    req.chunked = client.startswith("chunked")
    req.abandon = client.endswith("abandon")
    return req


def _framed(framing: str, items: list[tuple[bytes, bool]], prefix: str, draw: st.DrawFn) -> Request:
    ct = {"ndjson": "application/x-ndjson"}.get(framing, "application/json")
    valid = {f"{prefix}-{k}": b for k, (b, ok) in enumerate(items) if ok}
    if framing == "array":
        sep = draw(st.sampled_from([b",", b", ", b",\n"]))
        return Request(b"[" + sep.join(b for b, _ in items) + b"]", {"Content-Type": ct}, valid)
    if framing == "ndjson":
        return Request(b"\n".join(b for b, _ in items) + b"\n", {"Content-Type": ct}, valid)
    if framing == "object":
        body, ok = _item(draw(st.sampled_from(ITEM_KINDS)), prefix, 0)
        return Request(body, {"Content-Type": ct}, {prefix: body} if ok else {})
    if framing == "deep":
        depth = draw(st.sampled_from([100, 5_000, 100_000]))
        return Request(b"[" * depth + _reading(prefix, 0) + b"]" * depth, {"Content-Type": ct})
    if framing == "huge":  # past api.max_body_bytes as sent (gzipped it fits: then every reading is stored)
        huge = {f"{prefix}-h{k}": _reading(f"{prefix}-h{k}", k) for k in range(MAX_BODY // 80 + 10)}
        return Request(b"[" + b",".join(huge.values()) + b"]", {"Content-Type": ct}, huge)
    return Request(b"", {"Content-Type": ct})


def _encode(req: Request, how: str) -> None:
    if how == "identity":
        return
    if how == "unknown":
        req.headers["Content-Encoding"] = "br"
        return
    if how == "gzip_bomb":
        req.body = gzip.compress(b"[" + b" " * (MAX_INFLATED * 4) + b"]")
    elif how == "deflate":
        req.body = zlib.compress(req.body)
    else:
        req.body = gzip.compress(req.body)
    if how == "gzip_truncated":
        req.body = req.body[:max(1, len(req.body) // 2)]
    elif how == "gzip_corrupt":
        req.body = req.body[:10] + bytes(b ^ 0x5A for b in req.body[10:20]) + req.body[20:]
    elif how == "gzip_twice":
        req.body = gzip.compress(req.body)
        req.headers["Content-Encoding"] = "gzip, gzip"
        return
    req.headers["Content-Encoding"] = "deflate" if how == "deflate" else "gzip"


def _headers(req: Request, how: str) -> None:
    if how == "none":
        req.headers.pop("Content-Type")
    elif how == "text":
        req.headers["Content-Type"] = "text/plain"  # line protocol: every JSON line is rejected, not lost
        req.canonical = False
    elif how == "foreign":
        req.headers["Content-Type"] = "image/png"
    elif how == "charset":
        req.headers["Content-Type"] += "; charset=iso-8859-1"
    elif how == "plus_json":
        req.headers["Content-Type"] = "application/vnd.hostile+json"


def by_hand(name: str, kinds: list[str], framing: str = "array", **how: object) -> Request:
    """A request written out (the explicit examples): every item kind in one body, so each run
    of the property stores readings next to every kind of bad item, whatever it draws."""
    prefix = f"hx{uuid.uuid4().hex[:6]}-{name}"
    items = [_item(kind, f"{prefix}-{k}", k) for k, kind in enumerate(kinds)]
    sep = b"\n" if framing == "ndjson" else b","
    body = sep.join(b for b, _ in items)
    body = body + b"\n" if framing == "ndjson" else b"[" + body + b"]"
    ct = "application/x-ndjson" if framing == "ndjson" else "application/json"
    req = Request(body, {"Content-Type": ct}, {f"{prefix}-{k}": b for k, (b, ok) in enumerate(items) if ok})
    req.sensors = [prefix]
    for key, value in how.items():
        setattr(req, key, value)
    if how.get("gzip"):
        req.body = gzip.compress(req.body)
        req.headers["Content-Encoding"] = "gzip"
    req.drawn = [f"by hand: {name} {framing} {how}, {len(kinds)} items: {sorted(set(kinds))}"]
    return req


#: every item kind but the tokens that make a whole array unreadable JSON (those are in NaN_ARRAY)
JSON_KINDS = [k for k in ITEM_KINDS if k not in ("nan_token", "infinity_token")]
MIXED = [k for kind in JSON_KINDS for k in ("valid", kind)]
HAND = [
    by_hand("ndjson", ITEM_KINDS + ["valid"] * 3, "ndjson", exact=True),
    by_hand("ndjson-gzip-slow", ITEM_KINDS + ["valid"], "ndjson", exact=True, gzip=True, pace=(3, 0.3)),
    by_hand("array", MIXED),
    by_hand("array-chunked", MIXED, chunked=True),
    by_hand("nan-array", ["valid", "nan_token", "valid", "infinity_token"]),
    by_hand("abandoned", MIXED, abandon=True),
    by_hand("chunked-abandoned", MIXED, chunked=True, abandon=True),
    by_hand("chunked-too-large", ["valid"] * (MAX_BODY // 80 + 10), chunked=True),
]


# -- sending --------------------------------------------------------------------------------------


def send(svc: ServiceProcess, req: Request) -> tuple[int, bytes] | None:
    """Send ``req`` over a raw socket (so a client can be slow, or leave); its status and body, or
    None when the client left before the end of its body."""
    length = "Transfer-Encoding: chunked" if req.chunked else f"Content-Length: {len(req.body)}"
    head = [f"POST {req.path} HTTP/1.1", f"Host: 127.0.0.1:{svc.port}", length,
            "Connection: close", *(f"{k}: {v}" for k, v in {**req.headers, **svc.auth("ingest")}.items())]
    body = _chunks(req.body) if req.chunked else req.body
    with socket.create_connection(("127.0.0.1", svc.port), timeout=REQUEST_TIMEOUT_S) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if req.abandon:
            s.sendall(body[:len(body) // 2])
            return None
        chunks, pause = req.pace or (1, 0.0)
        step = max(1, -(-len(body) // chunks))
        for i in range(0, len(body), step):
            if i:
                time.sleep(pause)
            try:
                s.sendall(body[i:i + step])
            except (BrokenPipeError, ConnectionResetError):
                break  # answered early (413 before the whole body): read the answer
        return _answer(s)


def _chunks(body: bytes, size: int = 8192) -> bytes:
    """``body`` in HTTP/1.1 chunked transfer coding."""
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def _answer(s: socket.socket) -> tuple[int, bytes]:
    data = b""
    deadline = time.monotonic() + REQUEST_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), f"no HTTP answer within {REQUEST_TIMEOUT_S}s: {data[:200]!r}"
    if b"transfer-encoding: chunked" in head.lower():
        body = _unchunk(body)
    return int(head.split()[1]), body


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            break
        out, body = out + rest[:n], rest[n + 2:]
    return out


# -- accounting -----------------------------------------------------------------------------------


def counts(dsn: str) -> tuple[int, int]:
    """(readings, quarantine rows): requests go one at a time, so what one adds is the difference
    (a vendor format names its sensors its own way, so the count is not by the request's prefix)."""
    return int(db_value(dsn, "SELECT count(*) FROM readings")), int(db_value(dsn, "SELECT count(*) FROM quarantine"))


def stored_sensors(dsn: str, prefix: str) -> set[str]:
    from service_process import db_rows
    rows = db_rows(dsn, "SELECT s.sensor_id, r.value FROM readings r JOIN series s ON s.id = r.series_id "
                        "WHERE starts_with(s.sensor_id, $1)", prefix)
    return {r["sensor_id"] for r in rows}


def quarantined_with(dsn: str, sensor: str, since: int) -> int:
    return int(db_value(dsn, "SELECT count(*) FROM quarantine WHERE id > $1 AND position($2::bytea in payload) > 0",
                        since, sensor.encode()))


def check_accounting(svc: ServiceProcess, req: Request, prefix: str, answer: tuple[int, bytes] | None,
                     before: tuple[int, int], last_id: int) -> None:
    """The per-request rules of the module doc."""
    dsn = svc.dsn
    if answer is None:  # the client left: nothing acknowledged, so nothing may be half-stored silently
        time.sleep(0.3)
        after = counts(dsn)
        assert after == before, ("a request whose client left stored or quarantined something", before, after)
        return
    status, body = answer
    assert status < 500, (status, body[:500])
    after = counts(dsn)
    if status != 200:
        assert 400 <= status < 500, (status, body[:300])
        assert after == before, ("a refused request left rows", status, before, after)
        assert orjson.loads(body).get("detail"), body[:300]  # says why
        return
    doc = orjson.loads(body)
    stored, rejected = doc["stored"], len(doc["rejected"])
    assert (after[0] - before[0], after[1] - before[1]) == (stored, rejected), (doc, before, after)
    if req.canonical:  # every message has an outcome (one that is an array may have several)
        assert stored + rejected >= doc["messages"], doc
    got = stored_sensors(dsn, prefix)
    if req.path == "/ingest":
        assert got <= set(req.valid), ("stored what was not a valid reading", got - set(req.valid))
    for sensor in req.valid:
        assert sensor in got or quarantined_with(dsn, sensor, last_id), f"valid reading {sensor} lost"
    if req.exact:
        assert got == set(req.valid), ("valid readings not stored", set(req.valid) - got, doc)


def assert_no_internal_error(svc: ServiceProcess, since: int) -> None:
    """A hostile request is the client's fault: the service logs no traceback and no internal
    error for it (an abandoned upload did both on main, counted as a 500)."""
    with open(svc.log_path, "rb") as f:
        f.seek(since)
        new = f.read().decode("utf-8", "replace")
    for mark in ("Traceback", "failed unexpectedly", "Exception in ASGI application"):
        assert mark not in new, new[new.index(mark) - 300:new.index(mark) + 1500]


# -- the property -------------------------------------------------------------------------------


def _examples(reqs: list[Request]) -> Callable:
    """``@example`` for each of ``reqs``."""
    def wrap(f: Callable) -> Callable:
        for r in reversed(reqs):
            f = example(req=r)(f)
        return f
    return wrap


def _config(dsn: str) -> dict:
    return {"database": {"dsn": dsn}, "detection": {"enabled": False}, "validation": {"max_age_s": 7 * 86400.0},
            "api": {"max_body_bytes": MAX_BODY}, "http_ingest": {"max_decompressed_bytes": MAX_INFLATED}}


def test_hostile_http_requests_are_answered_and_accounted_for_exactly(fresh_db: str, tmp_path: Path) -> None:
    svc = ServiceProcess(_config(fresh_db), tmp_path).start()
    run = uuid.uuid4().hex[:6]
    n = {"i": 0}

    def tag() -> str:
        n["i"] += 1
        return f"hp{run}-{n['i']}"

    stalled = socket.create_connection(("127.0.0.1", svc.port), timeout=5)  # half a body, held open throughout
    stalled.sendall(f"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nContent-Type: application/json"
                    f"\r\nAuthorization: {svc.auth('ingest')['Authorization']}\r\n\r\n[".encode())
    try:
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                  phases=NO_SHRINK)
        @given(req=requests(tag))
        @_examples(HAND)
        def check(req: Request) -> None:
            prefix = req.sensors[-1]
            last_id = int(db_value(fresh_db, "SELECT coalesce(max(id), 0) FROM quarantine"))
            before = counts(fresh_db)
            assert svc.proc is not None and svc.proc.poll() is None, "the service died"
            for line in req.drawn:
                note(line)
            log_at = svc.log_path.stat().st_size
            answer = send(svc, req)
            note(f"answer={answer!r:.600}")
            event("client left" if answer is None else f"status {answer[0]}")
            check_accounting(svc, req, prefix, answer, before, last_id)
            assert_no_internal_error(svc, log_at)
            assert svc.health().status_code == 200, "the service stopped serving"

        check()
        stalled.close()
        time.sleep(0.5)
        assert_no_internal_error(svc, 0)
    finally:
        stalled.close()
        svc.stop_quietly()
