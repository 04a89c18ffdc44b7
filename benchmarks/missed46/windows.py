"""missed46: per injected window of a family_rows.py npz (instrumented main), what the kernel did in it.

usage: windows.py ROWS.npz THRESHOLD OUT.pkl

Per injected copy: NAB window [s, e], onset, first row >= threshold in the window (delay from onset), the best
in-window anomaly_score (row, stage code), per-candidate best emissions (before the second stage) on [onset, e],
the first row from the onset with anomaly_score >= 0.99 / 0.999 and its stage, and the same-rows best of the clean
copy. Per clean copy: rows >= threshold after probation.
"""

import pickle
import sys

import numpy as np

sys.path.insert(0, "/work/main/benchmarks")
sys.path.insert(0, "/work/main/benchmarks/tie45")
import nab_score  # noqa: E402

path, thr, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
z = np.load(path)
sc, dg, offs, names, wins = z["score"], z["diag"], z["offs"], z["names"], z["wins"]
wd = {int(i): (int(lo), int(hi)) for i, lo, hi in wins}
CAND = {"cal": 6, "reach": 7, "lane": 8, "period": 9, "robust_level": 10, "day_drift": 11}
rows = []
onsets = {}
for f, name in enumerate(names):
    fam, kind, seed, tag = str(name).split("/")
    a, b = offs[f], offs[f + 1]
    s_ = sc[a:b]
    d_ = dg[a:b]
    if tag == "clean":
        clean_s = s_
        continue
    s, e = wd[f]
    assert e - s == 300, (name, s, e)
    onset = s + 150  # the window is centred on the onset (nab_score.windows_from_points)
    w = slice(s, e + 1)
    inside = np.flatnonzero(s_[w] >= thr)
    first = int(s + inside[0]) if len(inside) else None
    ib = int(s + np.argmax(s_[w]))
    post = slice(onset, e + 1)

    def first_at(level):
        h = np.flatnonzero(s_[post] >= level)
        return (int(h[0]), int(d_[onset + h[0], 0])) if len(h) else (None, None)

    r = {
        "fam": fam, "kind": kind, "seed": int(seed), "s": s, "e": e, "onset": onset,
        "first": first, "first_code": int(d_[first, 0]) if first is not None else None,
        "best": float(s_[ib]), "best_row": ib, "best_code": int(d_[ib, 0]),
        "best_post": float(s_[post].max()), "best_post_code": int(d_[onset + np.argmax(s_[post]), 0]),
        "cand": {k: (float(d_[post, c].max()) if d_.shape[1] > c else float("nan")) for k, c in CAND.items()},
        "f99": first_at(0.99), "f999": first_at(0.999),
        "clean_best_post": float(clean_s[post].max()),
        "clean_best_pre": float(clean_s[nab_score.probation_length(len(clean_s)):s].max()),
        "inj_best_pre": float(s_[int(nab_score.probation_length(len(s_))):s].max()),
        "clean_fp": int((clean_s[int(nab_score.probation_length(len(clean_s))):] >= thr).sum()),
    }
    rows.append(r)
pickle.dump({"thr": thr, "rows": rows}, open(out, "wb"))
print(len(rows), "windows")
