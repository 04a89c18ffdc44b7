"""The Bytewax 0.21 peer of `urbanpulse run` in benchmarks/throughput.py (issue 14's benchmark).

Same job, written the way a Bytewax user would: Kafka JSON in (``KafkaSource``, every partition,
from the beginning, ending at the end of the topic), readings that fail the validator's rules
filtered out, the rest stored idempotently in the service's own ``series`` and ``readings``
tables (series ids registered with ``INSERT .. ON CONFLICT DO NOTHING``; each batch binary-COPY'd
into a temporary staging table, then ``INSERT .. SELECT .. ON CONFLICT DO NOTHING``, one
transaction per batch), and a one-minute tumbling mean per series (event time) upserted into
``bw_mean_1m``.

It runs in its own venv (never the project's): ``/tmp/bytewax-venv/bin/python -m bytewax.run
benchmarks/bytewax_flow.py:flow`` with ``UP_BW_SPEC`` (JSON: brokers, topic, dsn, group, metric
ranges, time rules, out dir). Each sink partition writes, when the input ends, a JSON file of
its commit times, from which throughput.py takes the first and last stored batch.

Not done here, in Bytewax's favour: no quarantine rows for the invalid readings, no offsets
committed (no recovery store), no detectors, alerts or hourly/daily levels.
"""

from __future__ import annotations

import json
import math
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import psycopg
from bytewax import operators as op
from bytewax.connectors.kafka import KafkaSource, KafkaSourceMessage
from bytewax.dataflow import Dataflow
from bytewax.operators.windowing import EventClock, TumblingWindower, fold_window
from bytewax.outputs import DynamicSink, StatelessSinkPartition

SPEC: dict[str, Any] = json.loads(os.environ.get("UP_BW_SPEC", "{}"))
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)
SOURCE_KAFKA = 2
Reading = tuple[str, str, datetime, float]  # sensor_id, metric, event time, value


def parse(msg: KafkaSourceMessage) -> Reading | None:
    """The validator's rules for a canonical reading (known metric, finite value inside its
    range, event time neither in the future nor too old); None drops the message."""
    try:
        d = orjson.loads(msg.value)
        sensor, metric, ts_ms, value = d["sensor_id"], d["metric"], d["ts"], d["value"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    lo_hi = SPEC["ranges"].get(metric)
    if (not isinstance(sensor, str) or not sensor or lo_hi is None or not isinstance(ts_ms, int)
            or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not lo_hi[0] <= value <= lo_hi[1]):
        return None
    now_ms = time.time() * 1000
    if ts_ms > now_ms + SPEC["max_future_ms"] or ts_ms < now_ms - SPEC["max_age_ms"]:
        return None
    return sensor, metric, EPOCH + timedelta(milliseconds=ts_ms), float(value)


class _Series:
    """Series ids of (sensor, metric), registered in the service's ``series`` table."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn, self.ids = conn, {}

    def resolve(self, keys: set[tuple[str, str]]) -> None:
        new = sorted(k for k in keys if k not in self.ids)  # one order: concurrent workers never deadlock
        if not new:
            return
        sensors, metrics = [k[0] for k in new], [k[1] for k in new]
        with self.conn.cursor() as cur:
            cur.execute("INSERT INTO series (sensor_id, metric) SELECT * FROM unnest(%s::text[], %s::text[]) "
                        "ON CONFLICT DO NOTHING", (sensors, metrics))
            cur.execute("SELECT s.id, s.sensor_id, s.metric FROM series s JOIN unnest(%s::text[], %s::text[]) "
                        "AS k(sensor_id, metric) USING (sensor_id, metric)", (sensors, metrics))
            for sid, sensor, metric in cur.fetchall():
                self.ids[(sensor, metric)] = sid
        self.conn.commit()


class _Partition(StatelessSinkPartition):
    """One worker's connection; records (commit time, rows) per batch for the benchmark."""

    kind = ""

    def __init__(self, worker: int) -> None:
        self.conn = psycopg.connect(SPEC["dsn"])
        self.series = _Series(self.conn)
        self.worker = worker
        self.commits: list[tuple[float, int]] = []

    def close(self) -> None:
        out = Path(SPEC["out_dir"]) / f"{self.kind}-{os.getpid()}-{self.worker}.json"
        out.write_text(json.dumps({"kind": self.kind, "commits": self.commits, "closed": time.time()}))
        self.conn.close()


class _ReadingsPartition(_Partition):
    kind = "readings"

    def __init__(self, worker: int) -> None:
        super().__init__(worker)
        self.conn.execute("CREATE TEMP TABLE bw_stage (series_id int4, ts timestamptz, value float8, "
                          "flags int2, source int2) ON COMMIT DELETE ROWS")
        self.conn.commit()

    def write_batch(self, items: list[Reading]) -> None:
        self.series.resolve({(r[0], r[1]) for r in items})
        ids = self.series.ids
        with self.conn.cursor() as cur:
            with cur.copy("COPY bw_stage FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "timestamptz", "float8", "int2", "int2"])
                for sensor, metric, ts, value in items:
                    copy.write_row((ids[(sensor, metric)], ts, value, 0, SOURCE_KAFKA))
            cur.execute("INSERT INTO readings (series_id, ts, value, flags, source) "
                        "SELECT series_id, ts, value, flags, source FROM bw_stage ON CONFLICT DO NOTHING")
        self.conn.commit()
        self.commits.append((time.time(), len(items)))


class _MeansPartition(_Partition):
    kind = "means"

    def write_batch(self, items: list[tuple[str, int, tuple[float, int]]]) -> None:
        keys = [tuple(k.split("\x00", 1)) for k, _, _ in items]
        self.series.resolve(set(keys))
        ids = [self.series.ids[k] for k in keys]
        buckets = [SPEC["align"] + w * MINUTE for _, w, _ in items]
        means = [s / n for _, _, (s, n) in items]
        counts = [n for _, _, (_, n) in items]
        with self.conn.cursor() as cur:
            cur.execute("INSERT INTO bw_mean_1m (series_id, bucket, mean, count) "
                        "SELECT * FROM unnest(%s::int4[], %s::timestamptz[], %s::float8[], %s::int8[]) "
                        "ON CONFLICT (series_id, bucket) DO UPDATE SET mean = excluded.mean, count = excluded.count",
                        (ids, buckets, means, counts))
        self.conn.commit()
        self.commits.append((time.time(), len(items)))


class _Sink(DynamicSink):
    def __init__(self, partition: type[_Partition]) -> None:
        self.partition = partition

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return self.partition(worker_index)


def build_flow() -> Dataflow:
    SPEC["align"] = EPOCH
    flow = Dataflow("urbanpulse_peer")
    msgs = op.input("kafka", flow, KafkaSource(
        SPEC["brokers"], [SPEC["topic"]], tail=False, batch_size=SPEC.get("batch_size", 5000),
        add_config={"group.id": SPEC["group"], "fetch.max.bytes": "67108864",  # as the service
                    "max.partition.fetch.bytes": "4194304"}))
    readings = op.filter_map("validate", msgs, parse)
    op.output("readings", readings, _Sink(_ReadingsPartition))
    keyed = op.key_on("series", readings, lambda r: f"{r[0]}\x00{r[1]}")
    # event time; a window closes once the series' watermark passes it. The watermark also moves
    # with the wall clock, so a stall longer than the wait would drop readings as late: 30 s of
    # slack (a run with wait 0 lost some under load), checked by throughput.py's recount
    clock = EventClock(lambda r: r[2], wait_for_system_duration=timedelta(seconds=SPEC.get("wait_s", 30)))
    windows = fold_window("mean_1m", keyed, clock,
                          TumblingWindower(length=MINUTE, align_to=EPOCH),
                          builder=lambda: (0.0, 0), folder=lambda acc, r: (acc[0] + r[3], acc[1] + 1),
                          merger=lambda a, b: (a[0] + b[0], a[1] + b[1]), ordered=False)
    means = op.map("flatten", windows.down, lambda kv: (kv[0], kv[1][0], kv[1][1]))
    op.output("means", means, _Sink(_MeansPartition))
    return flow


flow = build_flow() if SPEC else None
