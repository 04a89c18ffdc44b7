"""The likelihood's change-of-spread input off (= before it) and at the given thresholds, in one run.

    python benchmarks/detection_spread_ab.py 2 3

Per channel and per station (Sidak): pooled-threshold NAB standard per dataset, LODO with the
defaults only, synthetic windows found at the pooled threshold by family:kind; then the SKAB
anomaly-free run's alert onsets. Writes results/detection_spread_ab.json.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection_dev as dd  # noqa: E402
import detection_devset as devset  # noqa: E402

files = devset.load(False)
patches = {"off": {"fusion": {"likelihood_spread_threshold": 0.0}}}
for thr in sys.argv[1:]:
    patches[f"thr{thr}"] = {"fusion": {"likelihood_spread_threshold": float(thr)}}
out = {}
for name, patch in patches.items():
    t0 = time.time()
    sc, rate = dd.run_urbanpulse(files, patch)
    r = dd.per_dataset(files, sc)
    lo = dd.lodo(files, {"d": sc})
    sfiles, ssc = devset.stations(files, sc, "sidak")
    rs = dd.per_dataset(sfiles, ssc)
    los = dd.lodo(sfiles, {"d": ssc})
    row = {"channel": {"overall": r["overall"]["normalized"], "worst": r["worst"], **{d: r[d]["normalized"] for d in devset.DATASETS},
                       "thr": r["threshold"], "lodo_mean": lo["mean"], "lodo_worst": lo["worst"],
                       "lodo": {d: lo[d]["held_out"] for d in devset.DATASETS}},
           "station": {"overall": rs["overall"]["normalized"], "worst": rs["worst"], **{d: rs[d]["normalized"] for d in devset.DATASETS},
                       "thr": rs["threshold"], "lodo_mean": los["mean"], "lodo_worst": los["worst"],
                       "lodo": {d: los[d]["held_out"] for d in devset.DATASETS}}}
    # synthetic windows found at the pooled threshold, by family/kind
    th = r["threshold"]
    found = {}
    for f in files:
        if f.dataset != "synthetic":
            continue
        s = sc[f.name]
        for (a, b), k in zip(f.windows, f.kinds):
            fam = f.name.split("/")[1].split("_")[0]
            key = f"{fam}:{k}"
            hit = bool((s[a:b + 1] >= th).any())
            n, h = found.get(key, (0, 0))
            found[key] = (n + 1, h + hit)
    row["synthetic_found"] = found
    out[name] = row
    print(name, f"{time.time()-t0:.0f}s", json.dumps({k: row[k] for k in ("channel", "station")}, default=float), flush=True)
    print("  synth found", found, flush=True)
fa = dd.clean_false_alerts()
print("skab clean", fa)
json.dump(out, open(Path(__file__).resolve().parent / "results" / "detection_spread_ab.json", "w"), default=float, indent=1)
