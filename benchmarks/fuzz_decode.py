#!/usr/bin/env python
"""The long fuzz run: a million generated hostile inputs through decode + validate.

Drives :mod:`urbanpulse.fuzz` with a seeded RNG (hypothesis runs the short version in the test
suite) and feeds the inputs, in batches like a Kafka fetch, through exactly what the service
runs per batch (``Pipeline._decode``: the format's batch decode, validation, and the isolation
around them). For each batch it checks the accounting against :func:`urbanpulse.fuzz.canonical_units`
(the standard library's view of the payload): every message, or every item of a JSON array,
ends up exactly once as a reading or a rejection. Reports inputs tried, time, outcomes by
reason, accounting violations and how often the format itself raised (each such message is
quarantined as ``decode_error``; 0 means the format never needed the safety net). Failing
inputs are written to ``--failures`` for replay.

Also measures what the isolation costs the clean fast path: clean batches through
``Pipeline._decode`` against the format's decode + validation called directly, as a ratio.

Run:  .venv/bin/python benchmarks/fuzz_decode.py [--inputs 1000000] [--seed 1] [--format json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import orjson

from urbanpulse.config import IngestSettings
from urbanpulse.formats.base import MessageBatch
from urbanpulse.fuzz import RandomChoices, canonical_units, hostile_payload, outcomes_by_message
from urbanpulse.metrics import IngestMetrics
from urbanpulse.model import Reason
from urbanpulse.pipeline import Pipeline
from urbanpulse.plugins import build_format
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator


def fuzz(inputs: int, seed: int, fmt_name: str, batch_size: int, failures: Path | None) -> dict:
    fmt = build_format(fmt_name)
    pipeline = Pipeline(None, fmt, ReadingValidator(MetricCatalogue.load()), IngestSettings(),  # type: ignore[arg-type]
                        IngestMetrics())
    c = RandomChoices(seed)
    now_ms = int(time.time() * 1000)
    reasons: Counter[str] = Counter()
    readings = violations = items = 0
    bad: list[str] = []
    gen_s = decode_s = 0.0
    done = 0
    started = time.perf_counter()
    while done < inputs:
        n = min(batch_size, inputs - done)
        t0 = time.perf_counter()
        payloads = [hostile_payload(c, now_ms) for _ in range(n)]
        t1 = time.perf_counter()
        batch = MessageBatch(source="fuzz", payloads=payloads, topics=["fuzz"] * n, partitions=[0] * n,
                             offsets=list(range(n)), received_ns=now_ms * 1_000_000)
        validated = pipeline._decode(batch)
        t2 = time.perf_counter()
        gen_s += t1 - t0
        decode_s += t2 - t1
        readings += len(validated.readings)
        for r in validated.rejections:
            reasons[r.reason.value] += 1
        if fmt_name == "json":
            got = outcomes_by_message(validated.readings.msg.tolist(), validated.readings.item.tolist(),
                                      [(r.offset, r.item) for r in validated.rejections])
            for i, p in enumerate(payloads):
                want = canonical_units(p)
                items += len(want)
                if got.get(i) != want:
                    violations += 1
                    if len(bad) < 100:
                        bad.append(p.hex())
        done += n
        if done % 100_000 < batch_size:
            print(f"  {done:>9,} inputs  {time.perf_counter() - started:6.0f} s  violations {violations}",
                  file=sys.stderr, flush=True)
    if failures is not None and bad:
        failures.write_text("\n".join(bad) + "\n")
    return {"format": fmt_name, "seed": seed, "inputs": inputs, "batch_size": batch_size,
            "array_items_and_messages": items, "readings_valid": readings, "rejections": sum(reasons.values()),
            "by_reason": dict(reasons.most_common()), "accounting_violations": violations,
            "format_raised": reasons.get(Reason.DECODE_ERROR.value, 0),
            "seconds_total": round(time.perf_counter() - started, 1), "seconds_generating": round(gen_s, 1),
            "seconds_decoding": round(decode_s, 1), "inputs_per_s_decoding": round(inputs / decode_s)}


def fast_path_ratio(rounds: int = 21, batches: int = 100) -> dict:
    """Clean batches: ``Pipeline._decode`` (with isolation) vs decode + validate called directly."""
    fmt = build_format("json")
    validator = ReadingValidator(MetricCatalogue.load())
    pipeline = Pipeline(None, fmt, validator, IngestSettings(), IngestMetrics())  # type: ignore[arg-type]
    now_ms = int(time.time() * 1000) - 60_000
    single = [orjson.dumps({"sensor_id": f"s{i % 1000}", "metric": "pm2_5", "ts": now_ms + i, "value": 12.5})
              for i in range(500)]
    arrays = [orjson.dumps([{"sensor_id": f"s{(i * 10 + j) % 1000}", "metric": "pm2_5", "ts": now_ms + i,
                             "value": 12.5} for j in range(10)]) for i in range(50)]

    def direct(batch: MessageBatch) -> object:
        decoded = fmt.decode(batch)
        return validator.validate(batch, decoded, lambda k: fmt.raw_of(batch, decoded, k))

    out = {}
    for name, payloads in (("one reading per message", single), ("10-reading arrays", arrays)):
        ratios: list[float] = []
        best = {"direct": float("inf"), "isolated": float("inf")}
        for _ in range(rounds):  # interleaved; the median of per-round ratios: the machine is shared
            took = {}
            for label, fn in (("direct", direct), ("isolated", pipeline._decode)):
                t = time.perf_counter()
                for _ in range(batches):
                    fn(MessageBatch("kafka", payloads, topics=["t"] * len(payloads),
                                    partitions=[0] * len(payloads), offsets=list(range(len(payloads)))))
                took[label] = time.perf_counter() - t
                best[label] = min(best[label], took[label])
            ratios.append(took["direct"] / took["isolated"])
        readings = batches * 500
        out[name] = {"direct_readings_per_s": round(readings / best["direct"]),
                     "isolated_readings_per_s": round(readings / best["isolated"]),
                     "median_ratio": round(statistics.median(ratios), 3), "rounds": rounds}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--inputs", type=int, default=1_000_000, help="generated inputs (default 1000000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--format", default="json", help="format under test (accounting is checked for json)")
    p.add_argument("--batch-size", type=int, default=50, help="messages per decoded batch (default 50)")
    p.add_argument("--failures", type=Path, default=None, help="write failing inputs (hex, one a line) here")
    p.add_argument("--json", type=Path, default=None, help="write the figures as JSON here")
    args = p.parse_args()
    result = {"machine": f"{platform.machine()}, Python {platform.python_version()}",
              "fast_path": fast_path_ratio(),
              "fuzz": fuzz(args.inputs, args.seed, args.format, args.batch_size, args.failures)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
