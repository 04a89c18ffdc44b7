"""Decode + validate throughput per payload format, one core, beside orjson.loads of the same bytes.

For each built-in format: a corpus of realistic messages (urbanpulse.testing.samples: canonical
JSON arrays, SenML packs, line protocol, TTS/ChirpStack uplinks, ...), decoded by the format
and validated against the shipped catalogue exactly as the pipeline does, in batches of
``--batch`` messages. Reported: readings per CPU-second of decode+validate (least CPU time of
``--repeat`` runs; CPU time, not wall time, so a shared machine's other load does not count),
the same for decode alone, and readings/s of a bare ``orjson.loads`` over the same bytes (the
ceiling: parsing alone, no typing, no columns, no checks), and the ratio of the two.

    python benchmarks/decode_formats.py                 # all formats
    python benchmarks/decode_formats.py --formats json senml --json out.json
    python benchmarks/decode_formats.py --kafka-shape --batch 10000   # 1 reading/message, 2,000 series, 1 % invalid

Reports numbers; does not pass or fail (the target for json and senml is >= 500,000 readings/s).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from urbanpulse.formats.base import MessageBatch  # noqa: E402
from urbanpulse.plugins import build_format  # noqa: E402
from urbanpulse.quality.catalogue import MetricCatalogue  # noqa: E402
from urbanpulse.quality.validate import ReadingValidator, TimeRules  # noqa: E402
from urbanpulse.testing.samples import SAMPLE_OPTIONS, SAMPLES, sample  # noqa: E402

#: readings per message per format: what such devices send (arrays/packs of many; one uplink each)
PER_MESSAGE = {"json": 20, "senml": 20, "senml_cbor": 20, "influx_line": 20, "csv": 20}


def corpus(fmt: str, messages: int, t0: float) -> tuple[list[bytes], int]:
    payloads = []
    readings = 0
    for m in range(messages):
        p, n = sample(fmt, f"sensor-{m % 1000:04d}", t0 - (m // 1000) * 30, PER_MESSAGE.get(fmt, 10))
        payloads.append(p)
        readings += n
    return payloads, readings


def kafka_corpus(messages: int, series: int, invalid_every: int, t0: float) -> tuple[list[bytes], int]:
    """The analytics/throughput benchmarks' Kafka topic (benchmarks/ingest.py): one canonical
    reading per message, ``series`` sensors in turn, every ``invalid_every``-th value out of range."""
    base_ms = int(t0 * 1000) - 3_600_000
    payloads = []
    for i in range(messages):
        bad = invalid_every and i % invalid_every == invalid_every - 1
        value = 9999.0 if bad else ((i * 7919) % 800 - 200) / 10
        ts = base_ms + (i // series) * 1000
        payloads.append(f'{{"sensor_id":"sensor-{i % series:04d}","metric":"temperature","ts":{ts},"value":{value!r}}}'
                        .encode())
    return payloads, messages


def best_of(repeat: int, fn) -> float:  # noqa: ANN001
    """Least CPU time of ``repeat`` runs: CPU seconds of this process, not wall time, so other
    processes on a shared machine do not count against the decoder (the work is one thread)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def measure(fmt_name: str, messages: int, batch: int, repeat: int, kafka: tuple[int, int] | None = None) -> dict:
    t0 = time.time() - 120
    if kafka is not None:
        payloads, readings = kafka_corpus(messages, *kafka, t0)
    else:
        payloads, readings = corpus(fmt_name, messages, t0)
    fmt = build_format(fmt_name, SAMPLE_OPTIONS.get(fmt_name))
    validator = ReadingValidator(MetricCatalogue.load(), TimeRules())
    topic = "owntracks/u/d" if fmt_name == "owntracks" else "t"
    batches = [MessageBatch("bench", payloads[k:k + batch], topics=[topic] * len(payloads[k:k + batch]),
                            received_ns=int(t0 * 1e9)) for k in range(0, len(payloads), batch)]
    raw_of = getattr(fmt, "raw_of", None)
    stored = 0

    def decode_validate() -> None:
        nonlocal stored
        stored = 0
        for b in batches:
            d = fmt.decode(b)
            out = validator.validate(b, d, lambda k, b=b, d=d: raw_of(b, d, k) if raw_of else b"")
            stored += len(out.readings)

    def decode_only() -> None:
        for b in batches:
            fmt.decode(b)

    def ceiling() -> None:
        loads = orjson.loads
        for p in payloads:
            loads(p)

    full = best_of(repeat, decode_validate)
    dec = best_of(repeat, decode_only)
    row = {"format": fmt_name, "messages": messages, "readings": readings, "valid": stored,
           "decode_validate_rps": readings / full, "decode_rps": readings / dec}
    if fmt_name not in ("senml_cbor", "influx_line", "csv"):  # not JSON: orjson cannot parse them
        row["orjson_rps"] = readings / best_of(repeat, ceiling)
        row["ratio_to_orjson"] = row["decode_validate_rps"] / row["orjson_rps"]
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--formats", nargs="*", default=sorted(SAMPLES))
    ap.add_argument("--readings", type=int, default=200_000, help="readings per format (approximately)")
    ap.add_argument("--batch", type=int, default=500, help="messages per decode call (a Kafka fetch / MQTT chunk)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--kafka-shape", action="store_true",
                    help="canonical JSON only, shaped like the analytics benchmark's Kafka topic: one reading per "
                         "message, --series sensors, every --invalid-every-th value out of range")
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--invalid-every", type=int, default=100)
    args = ap.parse_args()
    # one thread: decoding and validation run on one core at a time (numpy does not spread these
    # element-wise operations over threads). Not pinned to a fixed CPU: on a shared machine that
    # measures the other processes on that CPU, not the decoder.
    rows = []
    for name in (["json"] if args.kafka_shape else args.formats):
        if args.kafka_shape:
            rows.append(measure(name, args.readings, args.batch, args.repeat, (args.series, args.invalid_every)))
            name = "json (Kafka shape)"
        else:
            per = sample(name, "x", time.time(), PER_MESSAGE.get(name, 10))[1]
            rows.append(measure(name, max(1, args.readings // per), args.batch, args.repeat))
        r = rows[-1]
        print(f"{name:17} {r['decode_validate_rps']:>12,.0f} readings/s decode+validate  "
              f"{r['decode_rps']:>12,.0f} decode only  "
              + (f"{r['orjson_rps']:>12,.0f} orjson.loads  ({r['ratio_to_orjson']:.0%})" if "orjson_rps" in r else "")
              + f"   [{r['valid']}/{r['readings']} valid]", flush=True)
    meta = {"python": sys.version.split()[0], "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "batch": args.batch, "repeat": args.repeat}
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
