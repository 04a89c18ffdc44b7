"""Ties at the top of a families run (fam_diag.py npz): groups of equal scores at/above the pooled threshold, the
stages that emit them, and the NAB score with ties broken by the stage's unfloored evidence (an exact upper bound of
an order-preserving finer map applied after every stage: nothing reads the emitted score back)."""

import sys
import numpy as np
from collections import Counter

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1]))
import nab_score

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from rows import stage_name as nm  # noqa: E402


z = np.load(sys.argv[1])
sc, dg, offs, names, wins, ts = z["score"], z["diag"], z["offs"], z["names"], z["wins"], z["ts"]
nf = len(names)


def corpus(score):
    ser = {
        n: nab_score.FileSeries(n, ts[offs[i] : offs[i + 1]], score[offs[i] : offs[i + 1]]) for i, n in enumerate(names)
    }
    wd = {n: [] for n in names}
    for i, lo, hi in wins:
        wd[names[i]].append((int(lo), int(hi)))
    return nab_score.score_corpus(ser, wd, "standard")


c0 = corpus(sc)
thr = c0.threshold
print(f"main: overall {c0.normalized:.3f} thr {thr!r}")
fid = np.repeat(np.arange(nf), np.diff(offs))
pos = np.arange(len(sc)) - offs[fid]
inwin = np.zeros(len(sc), bool)
after = np.zeros(len(sc), bool)
for i, lo, hi in wins:
    inwin[offs[i] + lo : offs[i] + hi + 1] = True
prob = np.array([nab_score.probation_length(int(offs[i + 1] - offs[i])) for i in range(nf)])
scorable = pos >= prob[fid]
top = (sc >= thr) & scorable
print("rows >= thr (scorable):", top.sum(), "in windows:", (top & inwin).sum())
vals, cnt = np.unique(sc[top], return_counts=True)
tied = cnt > 1
print("distinct values >= thr:", len(vals), "values shared by >1 row:", tied.sum(), "rows in them:", cnt[tied].sum())
order = np.argsort(-cnt)
for j in order[:10]:
    if cnt[j] < 2:
        break
    m = top & (sc == vals[j])
    print(
        f"  {vals[j]!r}: {cnt[j]} rows, in-window {(m & inwin).sum()}, "
        f"stages {Counter(nm(c) for c in dg[m, 0]).most_common(4)}"
    )
    print(
        f"      pre-recal {Counter(np.round(dg[m, 1], 13)).most_common(2)}; "
        f"y(stage) range {dg[m, 2].min():.2f}-{dg[m, 2].max():.2f}; "
        f"rc_out range {dg[m, 3].min():.2f}-{dg[m, 3].max():.2f}"
    )
# stage table of top rows
print("stages of rows >= thr: FP / in-window:")
for s, n in Counter(nm(c) for c in dg[top, 0]).most_common():
    m = top & np.array([nm(c) == s for c in dg[:, 0]])
    print(f"   {s}: {(m & ~inwin).sum()} / {(m & inwin).sum()}")
flo = top & (sc >= 1 - 1.5e-12)
print("rows at the floor (>= 1-1.5e-12):", flo.sum(), "in-window", (flo & inwin).sum())
