"""Cost of the privacy stage (docs/privacy.md): decode + privacy + validate of canonical JSON from
personal phones, as a ratio of the same batches with no privacy stage (issue 15 target >= 90 %).

The corpus: messages of 20 readings each (speed with lat/lon; no position-only fixes, which
the run without the stage would quarantine at a very different cost), from
``--devices`` e-mail-like device ids, in batches of ``--batch`` messages, all in one rotation
period. Both runs go through ``Pipeline._decode`` exactly as the service does; the privacy run has
``privacy.sources: {bench: personal}`` (pseudonyms, 3-decimal coarsening, position readings,
redacted quarantine). Reported: readings per CPU-second (least CPU time of ``--repeat`` runs) and
the ratio. This is the CPU stage in front of the database; end-to-end ingest spends most of its
time writing, so the end-to-end ratio is higher than this one.

    python benchmarks/privacy_stage.py [--messages 20000] [--devices 500] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from urbanpulse.config import IngestSettings, load_settings  # noqa: E402
from urbanpulse.formats.base import DecodeLimits, MessageBatch  # noqa: E402
from urbanpulse.formats.router import build_router  # noqa: E402
from urbanpulse.metrics import IngestMetrics  # noqa: E402
from urbanpulse.pipeline import Pipeline  # noqa: E402
from urbanpulse.privacy import build_privacy_stage  # noqa: E402
from urbanpulse.quality.catalogue import MetricCatalogue  # noqa: E402
from urbanpulse.quality.validate import ReadingValidator  # noqa: E402


def corpus(messages: int, devices: int, per_message: int = 20) -> list[bytes]:
    t0 = int(time.time() * 1000) - 3_600_000
    out = []
    for m in range(messages):
        device = f"phone-{m % devices:05d}.citizen@example.org"
        items = [{"sensor_id": device, "metric": "speed", "ts": t0 + m * 10 + k,
                  "value": 10.0 + k, "lat": 52.5200123 + k * 1e-5, "lon": 13.4049456}
                 for k in range(per_message)]
        out.append(orjson.dumps(items))
    return out


def pipeline(personal: bool) -> Pipeline:
    privacy = {"sources": {"bench": "personal"}} if personal else {}
    s = load_settings(None, privacy=privacy)
    catalogue = MetricCatalogue.load()
    return Pipeline(None, build_router(s, DecodeLimits(), catalogue), ReadingValidator(catalogue),  # type: ignore[arg-type]
                    IngestSettings(), IngestMetrics(), privacy=build_privacy_stage(s.privacy))


def run(p: Pipeline, batches: list[list[bytes]]) -> int:
    n = 0
    for b in batches:
        v = p._decode(MessageBatch(source="bench", payloads=b))
        n += len(v.readings)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("URBANPULSE_PSEUDONYM_KEY", "benchmark-key-0123456789abcdef")
    payloads = corpus(args.messages, args.devices)
    batches = [payloads[i:i + args.batch] for i in range(0, len(payloads), args.batch)]
    pipes = {"without": pipeline(False), "with": pipeline(True)}
    stored = {name: run(p, batches) for name, p in pipes.items()}  # warm-up; the pseudonym cache fills
    best = {name: float("inf") for name in pipes}
    for _ in range(args.repeat):  # interleaved, so a burst of load elsewhere hits both alike
        for name, p in pipes.items():
            gc.collect()
            start = time.process_time()
            run(p, batches)
            best[name] = min(best[name], time.process_time() - start)
    result: dict = {name: {"stored_readings": stored[name], "cpu_s": best[name],
                           "readings_per_cpu_s": stored[name] / best[name]} for name in pipes}
    ratio = result["with"]["readings_per_cpu_s"] / result["without"]["readings_per_cpu_s"]
    result["ratio_with_over_without"] = ratio
    print(f"without privacy stage: {result['without']['readings_per_cpu_s']:,.0f} readings/CPU-s "
          f"({result['without']['stored_readings']} stored)")
    print(f"with privacy stage:    {result['with']['readings_per_cpu_s']:,.0f} readings/CPU-s "
          f"({result['with']['stored_readings']} stored)")
    print(f"ratio: {ratio:.1%} (target >= 90%)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
