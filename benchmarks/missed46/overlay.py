"""missed46 Q4: the glitch statistic overlaid on main's anomaly_scores (one emission a glitch, at the reading after
it: the first that knows the reading came back), NAB-scored with the pooled threshold chosen again.

usage: overlay.py ROWS.npz R K [EMIT]

A reading t is a glitch where g_t (glitch.py) is at least R x the largest g the series made before t (after
probation) and at least K x the reading-to-reading noise scale; the row t + 1 gets max(score, EMIT).
"""

import sys

import numpy as np

sys.path.insert(0, "/work/main/benchmarks")
sys.path.insert(0, "/work/main/benchmarks/tie45")
sys.path.insert(0, "/tmp/missed46")
import after46_loss_split as ls  # noqa: E402
import detection_families as dfam  # noqa: E402
from glitch import glitch, noise_units, record_ratio  # noqa: E402
from glitch2 import fires  # noqa: E402
import os  # noqa: E402
from rows import Fam  # noqa: E402

path, R, K = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
EMIT = float(sys.argv[4]) if len(sys.argv) > 4 else 0.99999
#: the tail of the n-th firing of a series is (1 - EMIT) x GROW ** n (GROW 1: every firing at EMIT)
GROW = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
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
    g = glitch(x)
    if os.environ.get("GATE"):  # glitch2's gated statistic: K noise units, earlier <= GATE, >= R x the record
        t = fires(x, K, float(os.environ["GATE"]), R)
    else:
        t = np.flatnonzero((record_ratio(g) >= R) & (noise_units(x, g) >= K))
    t = t[t + 1 < len(x)]
    a = fam.offs[f]
    e = 1.0 - (1.0 - EMIT) * GROW ** np.arange(len(t))
    sc[a + t + 1] = np.maximum(sc[a + t + 1], e)
    hits[tag] += len(t)
new = fam.corpus(sc)
print(f"overlay R {R} K {K} gate {os.environ.get('GATE')} emit {EMIT} grow {GROW}: overall {new.normalized:.3f} threshold {new.threshold!r}; glitch rows {hits}")
at_main = fam.corpus(sc, threshold=base.threshold)
print(f"  at main's threshold: {at_main.normalized:.3f}")
s0, s1 = ls.split(fam, base.threshold), None
fam.sc = sc
s1 = ls.split(fam, new.threshold)
print("| kind | main | overlay | missed (main -> overlay) | FP clean rows |")
print("|---|---|---|---|---|")
for k in s0:
    print(f"| {k} | {s0[k]['check']:.2f} | {s1[k]['check']:.2f} | {s0[k]['missed']} -> {s1[k]['missed']} "
          f"| {s0[k]['rows']['clean']} -> {s1[k]['rows']['clean']} |")
