"""late47: where the CUSUM fires, per kind: windows hit on [onset, onset + 150] (median delay), clean copies firing
anywhere after T1. usage: kinds.py FAMS SEEDS C K H R"""
import sys

import numpy as np

sys.path.insert(0, "/work/wt/late47/benchmarks")
sys.path.insert(0, "/work/wt/late47/benchmarks/late47")
import detection_families as dfam  # noqa: E402
from cusum import fires, fires_spread  # noqa: E402
import os  # noqa: E402
if os.environ.get('SPREAD'):
    fires = fires_spread  # noqa: F811

fams, seeds = sys.argv[1].split(","), int(sys.argv[2])
C, K, H, R = (float(a) for a in sys.argv[3:7])
print(f"C {C} K {K} H {H} R {R}")
print("| kind | windows hit | delay 25/50/75 | clean copies firing | injected firing before onset |")
for fam in fams:
    for kind in dfam.ALL_KINDS[fam]:
        hit, dl, cl, pre = 0, [], 0, 0
        for s in range(seeds):
            d = dfam.draw(fam, kind, s)
            tc = fires(d.clean, C, K, H, R)
            ti = fires(d.injected, C, K, H, R)
            cl += len(tc) > 0
            w = ti[(ti >= d.onset) & (ti <= d.onset + 150)]
            pre += (ti < d.onset).any()
            if len(w):
                hit += 1
                dl.append(w[0] - d.onset)
        q = np.percentile(dl, [25, 50, 75]) if dl else [np.nan] * 3
        print(f"| {fam}:{kind} | {hit / seeds:.2f} | {q[0]:.0f} / {q[1]:.0f} / {q[2]:.0f} | {cl / seeds:.2f} | {pre / seeds:.2f} |")
