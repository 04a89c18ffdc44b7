"""Score the development set with an (instrumented) tree; save anomaly_score and per-row diagnostics."""

import sys, time
import numpy as np
from pathlib import Path

sys.path.insert(0, "benchmarks")
import detection_dev as dd, detection_devset as devset

out = Path(sys.argv[1])
files = devset.load(False)
t0 = time.time()
sc, offs, rate = dd.score_files(files, {})
n = int(offs[-1])
full = np.zeros(n)
full[sc.index] = sc.anomaly_score
diag = None
if hasattr(sc, "diag"):
    diag = np.zeros((n, sc.diag.shape[1]))
    diag[sc.index] = sc.diag
fid = np.concatenate([np.full(len(f.values), k) for k, f in enumerate(files)])
inwin = np.zeros(n, bool)
for k, f in enumerate(files):
    for lo, hi in f.windows:
        inwin[offs[k] + lo : offs[k] + hi + 1] = True
np.savez(
    out,
    score=full,
    diag=diag if diag is not None else np.zeros((n, 0)),
    fid=fid,
    inwin=inwin,
    offs=offs,
    names=np.array([f.name for f in files]),
    ds=np.array([f.dataset for f in files]),
)
print("scored", n, "rows in", time.time() - t0, "s")
runs = {"d": {f.name: full[offs[k] : offs[k + 1]] for k, f in enumerate(files)}}
lo = dd.lodo(files, runs)
print(
    "channel", {d: (round(lo[d]["held_out"], 3), lo[d]["threshold"]) for d in devset.DATASETS}, lo["mean"], lo["worst"]
)
sfiles, st = devset.stations(files, runs["d"], "sidak")
los = dd.lodo(sfiles, {"d": st})
print(
    "station",
    {d: (round(los[d]["held_out"], 3), los[d]["threshold"]) for d in devset.DATASETS},
    los["mean"],
    los["worst"],
)
