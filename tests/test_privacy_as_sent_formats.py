"""A personal reading is judged on its sensor id and unit as sent in every format that carries an id:
InfluxDB line protocol and CSV as well as canonical JSON, over-long ids included (benchmarks ``privacy38``).

Why: tests/test_privacy_as_sent.py proves it for canonical JSON with ids of at most ~20 characters. Line
protocol and CSV build the id from a tag or a cell and refuse some ids in the format itself (an empty
tag, an id longer than validation's ``MAX_SENSOR_ID_CHARS``, a NUL in CSV text), before the privacy
stage; CSV strips the spaces and tabs around a cell. Whatever the format decides, a personal topic must
decide the same as an open one, quote neither the id nor the unit in its quarantine row, and lose
nothing. The oracle: the open topic's outcome (itself checked against what each format is known to do),
then the personal topic's against the open one, through the real pipeline into PostgreSQL.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import os
from dataclasses import dataclass

import orjson
from hypothesis import HealthCheck, given, settings, strategies as st

import test_privacy_as_sent as as_sent
from privacy_pipeline import open_store, personal_pipeline, through
from urbanpulse.formats.units import conversion
from urbanpulse.model import Flag
from urbanpulse.pipeline import Pipeline
from urbanpulse.privacy.stage import REDACTED_MESSAGE
from urbanpulse.quality.validate import MAX_SENSOR_ID_CHARS, sensor_id_fault

EXAMPLES = int(os.environ.get("AS_SENT_FORMATS_EXAMPLES", "150"))
KEY, NOW_MS, POLICIES, UNITS = as_sent.KEY, as_sent.NOW_MS, as_sent.POLICIES, as_sent.UNITS
PERSONAL = "phones/#"
FORMATS = ("json", "influx_line", "csv")
#: per format, (personal topic, open topic); the routes below give each pair its format
TOPICS = {f: (f"phones/{f}/dev-7", f"city/{f}") for f in FORMATS}
FORMATS_SECTION = {
    "default": "json",
    "routes": {t: f for f in ("influx_line", "csv") for t in TOPICS[f]},
    "options": {"influx_line": {"precision": "ms"},
                "csv": {"sensor_id": "sensor", "ts": "ts", "time_format": "epoch_ms", "metric": "metric",
                        "value": "value", "unit": "unit"}},
}
#: the quarantine item of a message's k-th reading is k + ITEM_BASE (CSV: row 0 is the header)
ITEM_BASE = {"json": 0, "influx_line": 0, "csv": 1}
#: a line-protocol line ends at a newline, which no escape carries: such an id would be two lines
UNCARRIED = {"json": "", "influx_line": "\n", "csv": ""}
_EXAMPLE = itertools.count(1_000)  # (test_privacy_as_sent's times start at 0: the two may share a database)


@dataclass
class Sent:
    """One reading as sent: its id, metric and unit (None: none), and whether that unit is the metric's
    catalogue unit or an alias (or none)."""

    sensor: str
    metric: str
    unit: str | None
    unit_ok: bool


@st.composite
def sensor_ids(draw, fmt: str) -> str:  # noqa: ANN001
    """An id ``fmt`` can carry: test_privacy_as_sent's (valid, control characters, surrounding whitespace,
    empty, blank) or a long one, at validation's limit (valid), just over it or far over it, maybe with a
    control character or whitespace too (still over: the length is judged first)."""
    how = draw(st.sampled_from(["short", "short", "at_limit", "just_over", "far_over", "over_and_control"]))
    if how == "short":
        sensor, _ = draw(as_sent.sensor_ids())
    else:
        size = {"at_limit": MAX_SENSOR_ID_CHARS, "just_over": MAX_SENSOR_ID_CHARS + draw(st.integers(1, 3)),
                "far_over": draw(st.integers(400, 3000)),
                "over_and_control": MAX_SENSOR_ID_CHARS + draw(st.integers(1, 200))}[how]
        core = "dev-" + draw(st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=8, max_size=16))
        sensor = (core * (size // len(core) + 1))[:size]
        if how == "over_and_control":
            at = draw(st.integers(0, size - 1))
            sensor = sensor[:at] + draw(st.sampled_from(as_sent.CONTROL + as_sent.SPACE)) + sensor[at + 1:]
    return "".join(c for c in sensor if c not in UNCARRIED[fmt])


@st.composite
def readings(draw, fmt: str) -> Sent:  # noqa: ANN001
    """A reading of ``fmt``: a drawn id, a metric, and no unit, the catalogue's, an alias, or a wrong one."""
    sensor = draw(sensor_ids(fmt))
    metric = draw(st.sampled_from(sorted(UNITS)))
    unit_of, alias, wrong = UNITS[metric]
    kind = draw(st.sampled_from(["none", "catalogue", "alias", "wrong", "made_up"]))
    unit = {"none": None, "catalogue": unit_of, "alias": alias, "wrong": draw(st.sampled_from(wrong)),
            "made_up": "u" + draw(st.text("qwxyz", min_size=6, max_size=10))}[kind]
    return Sent(sensor, metric, unit, kind in ("none", "catalogue", "alias"))


def expected_open(fmt: str, sent: list[Sent]) -> list[str | None]:
    """The reason each reading is quarantined with on an open topic (None: stored), as each format and
    validation are known to decide: a NUL refuses a CSV message whole, line protocol refuses an empty tag
    (malformed) and an id over the limit (bad_sensor_id) in the format, CSV strips a cell's spaces and tabs
    and refuses an empty or over-long id in the format (bad_sensor_id); the rest is validation's ``sensor_id_fault``. The vendor
    formats (line protocol, CSV) convert a unit of the metric's dimension (``degF``, ``m/s``): stored."""
    if fmt == "csv" and any("\x00" in r.sensor for r in sent):
        return ["malformed"] * len(sent)
    out: list[str | None] = []
    for r in sent:
        sensor = r.sensor.strip(" \t") if fmt == "csv" else r.sensor
        if fmt == "influx_line" and not sensor:
            out.append("malformed")
        elif fmt == "influx_line" and len(sensor) > MAX_SENSOR_ID_CHARS:
            out.append("bad_sensor_id")
        else:
            unit_ok = r.unit_ok or (fmt != "json" and conversion(r.unit, UNITS[r.metric][0]) is not None)
            out.append("bad_sensor_id" if sensor_id_fault(sensor) else None if unit_ok else "unit_mismatch")
    return out


def _escape_tag(text: str) -> str:
    """A line-protocol tag value: backslash, comma, equals sign and space escaped."""
    for c in "\\,= ":
        text = text.replace(c, "\\" + c)
    return text


def message(fmt: str, sent: list[Sent], value0: float, ts_ms: int) -> bytes:
    """One message of ``fmt`` holding the readings, reading k of value ``value0 + k`` at ``ts_ms - 1000 k``
    (the time says which reading a stored row is: a vendor format may convert the value's unit)."""
    at = [(r, ts_ms - 1000 * k, value0 + k) for k, r in enumerate(sent)]
    if fmt == "json":
        return orjson.dumps([{"sensor_id": r.sensor, "metric": r.metric, "ts": ts, "value": v,
                              **({} if r.unit is None else {"unit": r.unit})} for r, ts, v in at])
    if fmt == "influx_line":
        return "\n".join(f"{r.metric},sensor_id={_escape_tag(r.sensor)}"
                         f"{'' if r.unit is None else ',unit=' + _escape_tag(r.unit)} value={v} {ts}"
                         for r, ts, v in at).encode()
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["sensor", "ts", "metric", "value", "unit"])
    writer.writerows([r.sensor, ts, r.metric, v, r.unit or ""] for r, ts, v in at)
    return out.getvalue().encode()


def _by_reading(fmt: str, n: int, rows: list[dict]) -> dict[int, dict]:
    """Quarantine rows by reading index: a row of item -1 (the message refused whole) stands for each."""
    whole = [r for r in rows if r["item"] == -1]
    if whole:
        assert len(whole) == 1 and len(rows) == 1, rows
        return dict.fromkeys(range(n), whole[0])
    by = {r["item"] - ITEM_BASE[fmt]: r for r in rows}
    assert len(by) == len(rows) and set(by) <= set(range(n)), (fmt, rows)
    return by


def _assert_personal_row_quotes_nothing(sent: Sent, row: dict) -> None:
    """A redacted personal row: no id as sent, no unit in its detail or payload; the payload is what the
    class keeps (a pseudonym) or nothing of the message."""
    payload = bytes(row["payload"])
    text = row["detail"] + payload.decode("utf-8", "replace")
    core = sent.sensor.strip()
    for piece in {core, core[:64], core.replace(" ", "")}:
        if len(piece) >= 8:  # (a generated id's core: "dev-" and 4 more)
            assert piece not in text, (sent, row)
    if payload != REDACTED_MESSAGE:
        kept = orjson.loads(payload)
        assert kept["redacted"] is True and kept["sensor_id"].startswith("psn-") and "unit" not in kept, kept
        assert sent.unit is None or sent.unit not in {str(v) for v in kept.values()}, (sent, kept)
    if sent.unit is not None and row["reason"] == "unit_mismatch":
        assert sent.unit not in row["detail"] and "(unit withheld: personal data" in row["detail"], row


def check_formats(loop: asyncio.AbstractEventLoop, pool, parts, pipelines: dict,  # noqa: ANN001
                  policy: str, fmt: str, sent: list[Sent], mixed: bool = False) -> None:
    """The same message of ``fmt`` on a personal topic and on an open one through the pipeline into
    PostgreSQL; AssertionError if the open outcome is not the format's known one, the personal outcome
    differs from the open one, a reading is lost or kept twice, or a personal row quotes the id or unit.
    ``mixed``: a canonical JSON message of one valid open reading goes first in the same batch, so a
    line-protocol or CSV batch is split by format and joined again (the router's indices, not its
    shortcut for a batch of one format), and the two messages are not the batch's first."""
    if policy not in pipelines:
        pipelines[policy] = loop.run_until_complete(
            personal_pipeline(pool, parts, POLICIES[policy], PERSONAL, FORMATS_SECTION))
    conf = POLICIES[policy]
    pseudonymised, drops_unit = conf.get("pseudonymise", False), "unit" in conf.get("drop_fields", [])
    redacted = pseudonymised or conf.get("quarantine_payload") == "redact"
    ts_ms = NOW_MS - 10_000 * next(_EXAMPLE)
    mine_topic, open_topic = TOPICS[fmt]
    payloads = [message(fmt, sent, 10.0, ts_ms), message(fmt, sent, 40.0, ts_ms - 500)]
    topics = [mine_topic, open_topic]
    if mixed:
        payloads.insert(0, message("json", [Sent("dev-mixed", "speed", "km/h", True)], 20.0, ts_ms - 250))
        topics.insert(0, TOPICS["json"][1])
    stored, rows = loop.run_until_complete(through(
        pipelines[policy], pool, payloads, topics,
        "s.sensor_id, r.flags, (extract(epoch FROM r.ts) * 1000)::bigint AS ts_ms"))
    companion = [r for r in stored if (ts_ms - r["ts_ms"]) % 1000 == 250]
    assert len(companion) == int(mixed) and all(r["sensor_id"] == "dev-mixed" for r in companion), stored
    stored = [r for r in stored if r not in companion]
    # personal reading k at ts_ms - 1000 k, open reading k 500 ms before it
    mine = {(ts_ms - r["ts_ms"]) // 1000: r for r in stored if (ts_ms - r["ts_ms"]) % 1000 == 0}
    station = {(ts_ms - r["ts_ms"]) // 1000: r for r in stored if (ts_ms - r["ts_ms"]) % 1000 == 500}
    assert len(mine) + len(station) == len(stored), stored
    q_mine = _by_reading(fmt, len(sent), [r for r in rows if r["topic"] == (PERSONAL if redacted else mine_topic)])
    q_open = _by_reading(fmt, len(sent), [r for r in rows if r["topic"] == open_topic])
    # (the companion is valid: no row)
    assert sum(1 for r in rows if r["topic"] in (PERSONAL, mine_topic, open_topic)) == len(rows), rows
    for k, (r, want) in enumerate(zip(sent, expected_open(fmt, sent))):
        # stored or quarantined, once, on each topic: nothing lost
        assert (k in mine) != (k in q_mine) and (k in station) != (k in q_open), (fmt, k, r, stored, rows)
        got_open = q_open[k]["reason"] if k in q_open else None
        assert got_open == want, (fmt, r, want, q_open.get(k))
        assert (q_mine[k]["reason"] if k in q_mine else None) == got_open, (fmt, policy, r, q_mine.get(k))
        if k in mine:
            as_stored = station[k]["sensor_id"]
            assert mine[k]["sensor_id"].startswith("psn-") if pseudonymised else mine[k]["sensor_id"] == as_stored
            assert bool(mine[k]["flags"] & Flag.HAS_UNIT) == (r.unit is not None and not drops_unit), (r, mine[k])
            assert bool(station[k]["flags"] & Flag.HAS_UNIT) == (r.unit is not None), (r, station[k])
        elif redacted:
            _assert_personal_row_quotes_nothing(r, q_mine[k])
        else:  # kept as received: the detail is the open one's (the payloads differ in value and time)
            assert q_mine[k]["detail"] == q_open[k]["detail"], (q_mine[k], q_open[k])


def _run(dsn: str, body) -> None:  # noqa: ANN001
    """``body(loop, pool, parts, pipelines)`` on a pool of ``dsn``; the pipelines it starts stopped after."""
    loop = asyncio.new_event_loop()
    pool, parts = loop.run_until_complete(open_store(dsn))
    pipelines: dict[str, Pipeline] = {}
    try:
        body(loop, pool, parts, pipelines)
    finally:
        for p in pipelines.values():
            loop.run_until_complete(p.stop())
        loop.run_until_complete(pool.close())
        loop.close()


def format_and_readings() -> st.SearchStrategy[tuple[str, list[Sent], bool]]:
    """A format, one to six readings it can carry, and whether the batch mixes formats (``check_formats``)."""
    return st.sampled_from(FORMATS).flatmap(
        lambda f: st.tuples(st.just(f), st.lists(readings(f), min_size=1, max_size=6), st.booleans()))


def test_a_personal_id_and_unit_are_judged_as_sent_in_every_format(fresh_db: str, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("URBANPULSE_PSEUDONYM_KEY", KEY)

    def body(loop, pool, parts, pipelines) -> None:  # noqa: ANN001
        @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(policy=st.sampled_from(sorted(POLICIES)), drawn=format_and_readings())
        def check(policy: str, drawn: tuple[str, list[Sent], bool]) -> None:
            check_formats(loop, pool, parts, pipelines, policy, *drawn)
        check()

    _run(fresh_db, body)


def test_the_oracle_can_fail(fresh_db: str, monkeypatch) -> None:  # noqa: ANN001
    """The open outcome is checked against each format's known one: a wrong expectation is told apart."""
    monkeypatch.setenv("URBANPULSE_PSEUDONYM_KEY", KEY)
    over = "dev-" + "x" * MAX_SENSOR_ID_CHARS

    def body(loop, pool, parts, pipelines) -> None:  # noqa: ANN001
        for fmt in FORMATS:
            check_formats(loop, pool, parts, pipelines, "pseudonymise_drop_unit", fmt,
                          [Sent(over, "temperature", None, True), Sent("dev-abcd", "speed", "furlongs", False)])
        # told apart: a wrong unit expected stored, no unit expected unit_mismatch
        for fmt, wrong in (("csv", Sent("dev-abcd", "temperature", "furlongs", True)),
                           ("influx_line", Sent("dev-abcd", "temperature", None, False))):
            try:
                check_formats(loop, pool, parts, pipelines, "pseudonymise_drop_unit", fmt, [wrong])
            except AssertionError:
                continue
            raise AssertionError(f"{fmt} {wrong} passed")

    _run(fresh_db, body)
