"""Families sweep (as detection_families.py --nab) with per-row diagnostics from an instrumented tree.
usage: fam_diag.py OUT.npz SEEDS fam1,fam2,...|default"""

import sys, time
import numpy as np

sys.path.insert(0, "benchmarks")
import detection_families as dfam, nab_score
from corpus import families

out, seeds, fams = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fams = list(families.KINDS) if fams == "default" else fams.split(",")
t0 = time.time()
names, scores, diags, wins, ts_all = [], [], [], [], []
for fam in fams:
    for kind in dfam.ALL_KINDS[fam]:
        draws = [dfam.draw(fam, kind, s) for s in range(seeds)]
        for lo in range(0, len(draws), 100):
            part = draws[lo : lo + 100]
            sc, bounds = dfam.score_copies(part)
            for j, d in enumerate(part):
                for k, tag in ((0, "clean"), (1, "injected")):
                    a, b = bounds[2 * j + k], bounds[2 * j + k + 1]
                    names.append(f"{fam}/{kind}/{d.seed}/{tag}")
                    scores.append(np.asarray(sc.anomaly_score[a:b], np.float64))
                    diags.append(sc.diag[a:b] if hasattr(sc, "diag") else np.zeros((b - a, 0)))
                    ts_all.append(d.ts_us)
                    w = [] if k == 0 else nab_score.windows_from_points(d.ts_us, [d.onset])
                    wins.append(w)
offs = np.cumsum([0] + [len(s) for s in scores])
win_arr = np.array([(i, lo, hi) for i, w in enumerate(wins) for lo, hi in w], np.int64).reshape(-1, 3)
np.savez(
    out,
    score=np.concatenate(scores),
    diag=np.concatenate(diags),
    offs=offs,
    names=np.array(names),
    wins=win_arr,
    ts=np.concatenate(ts_all),
)
ser = {n: nab_score.FileSeries(n, ts_all[i], scores[i]) for i, n in enumerate(names)}
wd = {n: wins[i] for i, n in enumerate(names)}
c = nab_score.score_corpus(ser, wd, "standard")
print(f"{fams} overall {c.normalized:.3f} threshold {c.threshold!r} in {time.time() - t0:.0f}s")
