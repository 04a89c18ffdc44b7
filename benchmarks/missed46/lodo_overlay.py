"""missed46: the glitch statistic (glitch2.fires, K 8, G 6, R 2; env BURST / DENSITY / MAD0_OFF as set) overlaid on
main's development-set rows (after46's dev_main.npz, main d3c2530), LODO per channel and per station."""
import sys
import numpy as np
sys.path.insert(0, "/work/main/benchmarks"); sys.path.insert(0, "/tmp/missed46")
import detection_dev as dd, detection_devset as devset  # noqa: E402
from glitch2 import fires  # noqa: E402

z = np.load("/tmp/after46/dev_main.npz")
sc, offs = z["score"], z["offs"]
files = devset.load(False)


def lodo(score):
    runs = {f.name: score[offs[k]: offs[k + 1]] for k, f in enumerate(files)}
    lo = dd.lodo(files, {"d": runs})
    sfiles, st = devset.stations(files, runs, "sidak")
    los = dd.lodo(sfiles, {"d": st})
    return (f"channel {lo['mean']:.3f} / {lo['worst']:.3f} " + " ".join(f"{d} {lo[d]['held_out']:.3f}" for d in devset.DATASETS)
            + f" | station {los['mean']:.3f} / {los['worst']:.3f} " + " ".join(f"{d} {los[d]['held_out']:.3f}" for d in devset.DATASETS))


new = sc.copy()
n_f, n_in, per, skipped = 0, 0, {}, []
for k, f in enumerate(files):
    x = np.asarray(f.values, float)
    assert len(x) == offs[k + 1] - offs[k], f.name
    if len(x) < 500 or not np.isfinite(x).all():
        skipped.append(f.name)
        continue
    t = fires(x, float(__import__("os").environ.get("K", "8")), 6.0, 2.0)
    t = t[t + 1 < len(x)]
    new[offs[k] + t + 1] = np.maximum(new[offs[k] + t + 1], 0.99999)
    inw = sum(any(lo <= r + 1 <= hi for lo, hi in f.windows) for r in t)
    n_f += len(t); n_in += inw
    per[f.dataset] = per.get(f.dataset, [0, 0, 0])
    per[f.dataset][0] += len(t); per[f.dataset][1] += inw; per[f.dataset][2] += bool(len(t))
print("files", len(files), "skipped (short or non-finite)", len(skipped)); print("firings", n_f, "in labelled windows", n_in, "per dataset [firings, in windows, files]", per)
print("main   ", lodo(sc))
print("overlay", lodo(new))
