"""late47: the robust CUSUM (cusum.fires) overlaid on main's anomaly_scores, NAB re-scored with the pooled threshold
chosen again (as missed46's overlay.py). usage: overlay.py ROWS.npz C K H R [EMIT]"""
import sys

import numpy as np

sys.path.insert(0, "/work/wt/late47/benchmarks")
sys.path.insert(0, "/work/wt/late47/benchmarks/tie45")
sys.path.insert(0, "/work/wt/late47/benchmarks/late47")
import detection_families as dfam  # noqa: E402
from cusum import fires  # noqa: E402
from rows import Fam  # noqa: E402

path = sys.argv[1]
C, K, H, R = (float(a) for a in sys.argv[2:6])
EMIT = float(sys.argv[6]) if len(sys.argv) > 6 else 0.99999
fam = Fam(path)
base = fam.corpus(fam.sc)
print(f"main: overall {base.normalized:.3f} threshold {base.threshold!r}")
sc = fam.sc.copy()
cache = {}
hits = {"clean": 0, "injected": 0}
for f, name in enumerate(fam.names):
    fa, kind, seed, tag = str(name).split("/")
    key = (fa, kind, int(seed))
    if key not in cache:
        cache = {key: dfam.draw(fa, kind, int(seed))}
    d = cache[key]
    x = (d.clean if tag == "clean" else d.injected).astype(float)
    t = fires(x, C, K, H, R)
    a = fam.offs[f]
    sc[a + t] = np.maximum(sc[a + t], EMIT)
    hits[tag] += len(t)
new = fam.corpus(sc)
print(f"overlay C {C} K {K} H {H} R {R} emit {EMIT}: overall {new.normalized:.3f} threshold {new.threshold!r}; rows {hits}")


def per_kind(c):
    """kind -> (NAB normalised over the kind's files, missed windows, clean files with an FP)."""
    acc = {}
    for f in c.files:
        fa, kind, _, tag = f.name.split("/")
        a = acc.setdefault(f"{fa}:{kind}", [0.0, 0.0, 0.0, 0, 0])
        a[0] += f.raw
        a[1] += f.null
        a[2] += f.perfect
        a[3] += (f.windows - f.detected_windows) if tag == "injected" else 0
        a[4] += (f.fp > 0) if tag == "clean" else 0
    return {k: (100 * (a[0] - a[1]) / (a[2] - a[1]), a[3], a[4]) for k, a in acc.items()}


k0, k1 = per_kind(base), per_kind(new)
print("| kind | main | overlay | missed (main -> overlay) | clean files with a FP |")
print("|---|---|---|---|---|")
for k in k0:
    print(f"| {k} | {k0[k][0]:.2f} | {k1[k][0]:.2f} | {k0[k][1]} -> {k1[k][1]} | {k0[k][2]} -> {k1[k][2]} |")
