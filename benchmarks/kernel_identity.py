"""Bit-identity of the detector kernel between two trees: SHA-256 of every output and state array.

    python benchmarks/kernel_identity.py --json out.json [--seeds 3]
    python benchmarks/kernel_identity.py --compare a.json b.json

Why: a speed-up of the kernel must not change any result (every anomaly_score, decision, detector score and
state column, bit for bit), and a count of alerts or a NAB figure can hide a changed bit. One DetectorBank per
set of generated families (`corpus/families.py`, `families_blind.py`, `families_blind2.py`: `--seeds` seeds of
every kind, the clean and the injected series each in a slot) and one over the throughput workload
(`detection_throughput.workload`, smaller) are fed in reading-major batches, as the service feeds them; each
output array (concatenated over the batches) and each final state array is hashed. Run it with PYTHONPATH on
each tree (and URBANPULSE_KERNELS=jit or the ahead-of-time build) and compare the two JSON files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterator

import numpy as np

BATCH_ROWS = 257  # rows of every series per batch (odd: batches do not line up with the refresh period)
OUTPUTS = ("index", "slot", "score", "decision", "anomaly_score", "alert")
STATES = ("last_ts", "state", "values", "changes", "gaps", "season")


def _sha(a: np.ndarray) -> str:
    """The array's dtype, shape and bytes, hashed (a changed shape or dtype is a difference too)."""
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def family_series(module: str, seeds: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, ts, values) of the clean and injected series of every kind of every family in `module`."""
    import importlib

    mod = importlib.import_module(f"corpus.{module}")
    kinds = mod.ALL_KINDS if hasattr(mod, "ALL_KINDS") else mod.KINDS
    for family, ks in kinds.items():
        for kind in ks:
            for seed in range(seeds):
                d = mod.draw(family, kind, seed)
                yield f"{family}/{kind}/{seed}/clean", d.ts_us, d.clean
                yield f"{family}/{kind}/{seed}/injected", d.ts_us, d.injected


def throughput_series(n_series: int, n_readings: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """The throughput benchmark's mixed series (Gaussian, counts, on/off, sine), one per slot."""
    from detection_throughput import workload

    slot, ts, v = workload(n_series, n_readings)
    for s in range(n_series):
        yield f"tp{s}", ts[slot == s], v[slot == s]


def run_bank(series: list[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, str]:
    """Feed every series into its own slot of one DetectorBank, BATCH_ROWS rows of each per batch; hashes."""
    from urbanpulse.detect import DetectionSettings, DetectorBank

    bank = DetectorBank(DetectionSettings())
    n = len(series)
    bank.assign(np.arange(n), [name for name, _, _ in series], ["value"] * n)
    longest = max(len(v) for _, _, v in series)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in OUTPUTS}
    for a in range(0, longest, BATCH_ROWS):
        chunks = [(k, ts[a:a + BATCH_ROWS], v[a:a + BATCH_ROWS]) for k, (_, ts, v) in enumerate(series)]
        slot = np.concatenate([np.full(len(t), k, np.int64) for k, t, _ in chunks])
        ts = np.concatenate([t for _, t, _ in chunks])
        v = np.concatenate([x for _, _, x in chunks])
        sc = bank.score(slot, ts, v)
        for k in OUTPUTS:
            parts[k].append(getattr(sc, k))
    out = {f"out.{k}": _sha(np.concatenate(parts[k])) for k in OUTPUTS}
    out.update({f"state.{k}": _sha(getattr(bank, k)) for k in STATES})
    out["n_readings"] = str(sum(len(p) for p in parts["anomaly_score"]))
    out["n_alerts"] = str(int(sum(int(p.sum()) for p in parts["alert"])))
    return out


def measure(seeds: int) -> dict[str, dict[str, str]]:
    """Hashes of each set: the three family modules and the throughput workload."""
    from urbanpulse import aot

    res: dict[str, dict[str, str]] = {}
    for module in ("families", "families_blind", "families_blind2"):
        res[module] = run_bank(list(family_series(module, seeds)))
    res["throughput"] = run_bank(list(throughput_series(400, 1500)))
    res["_meta"] = {"kernels": aot.mode(), "aot_loaded": str(aot.using_aot())}
    return res


def compare(a_path: str, b_path: str) -> int:
    """Print each hash that differs; 0 when all are identical."""
    a, b = json.loads(open(a_path).read()), json.loads(open(b_path).read())
    diff = 0
    for s in sorted(set(a) | set(b)):
        if s == "_meta":
            continue
        for k in sorted(set(a.get(s, {})) | set(b.get(s, {}))):
            if a.get(s, {}).get(k) != b.get(s, {}).get(k):
                diff += 1
                print(f"DIFFERS {s} {k}")
    n = sum(len(v) for s, v in a.items() if s != "_meta")
    print(f"{'identical' if not diff else f'{diff} differ'}: {n} hashes ({a.get('_meta')} vs {b.get('_meta')})")
    return 1 if diff else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--json")
    ap.add_argument("--compare", nargs=2)
    args = ap.parse_args()
    if args.compare:
        sys.exit(compare(*args.compare))
    res = measure(args.seeds)
    text = json.dumps(res, indent=1, sort_keys=True)
    if args.json:
        open(args.json, "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
