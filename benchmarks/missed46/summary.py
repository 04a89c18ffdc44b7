"""missed46: the tables (Q1-Q3) from windows.py's and series.py's pickles.

usage: summary.py WINDOWS.pkl SERIES.pkl [KIND ...]
"""

import pickle
import sys
from collections import Counter

import numpy as np

sys.path.insert(0, "/work/main/benchmarks")
import nab_score  # noqa: E402

NAMES = {10: "value?", 11: "robust_z", 12: "ewma", 13: "spike", 14: "flatline", 15: "threshold", 20: "silence",
         30: "likelihood", 40: "reach", 50: "lane", 51: "count_drop", 60: "period", 70: "robust_level",
         80: "fl_offer", 90: "day_drift", 0: "none"}


def nm(c):
    return "-" if c is None else NAMES.get(c % 100, str(c)) + ("+bf" if c >= 100 else "")


def credit(i, s, e):
    return float(nab_score.scaled_sigmoid(-(e - i + 1) / (e - s + 1)) / nab_score.MAX_TP)


def q(v, p=(25, 50, 75), fmt="{:.0f}"):
    v = np.asarray([x for x in v if x is not None], float)
    if len(v) == 0:
        return "-"
    return " / ".join(fmt.format(x) for x in np.percentile(v, p))


def top(cnt, k=3):
    n = sum(cnt.values())
    return ", ".join(f"{a} {b}" for a, b in cnt.most_common(k)) if n else "-"



def main():
    W = pickle.load(open(sys.argv[1], "rb"))
    S = {(r["fam"], r["kind"], r["seed"]): r for r in pickle.load(open(sys.argv[2], "rb"))}
    only = sys.argv[3:]
    thr = W["thr"]

    by_kind = {}
    for r in W["rows"]:
        by_kind.setdefault(f"{r['fam']}:{r['kind']}", []).append(r)
    kinds = [k for k in by_kind if not only or k in only]

    print(f"threshold {thr!r}\n")
    print("### Q1: the window in the series' own units (median over draws; missed / found)\n")
    print("| kind | windows | missed | peak departure, sigma_d (missed / found) | peak / history range (missed / found) "
          "| readings to half the peak | rows outside the history's range (missed / found) | noise after / before |")
    print("|---|---|---|---|---|---|---|---|")
    for k in kinds:
        rs = by_kind[k]
        m = [S[(r["fam"], r["kind"], r["seed"])] for r in rs if r["first"] is None]
        f = [S[(r["fam"], r["kind"], r["seed"])] for r in rs if r["first"] is not None]
        a = [S[(r["fam"], r["kind"], r["seed"])] for r in rs]

        def med(lst, key, fmt="{:.2f}"):
            return fmt.format(np.median([x[key] for x in lst])) if lst else "-"
        print(f"| {k} | {len(rs)} | {len(m)} | {med(m, 'peak_d', '{:.1f}')} / {med(f, 'peak_d', '{:.1f}')} "
              f"| {med(m, 'peak_r')} / {med(f, 'peak_r')} | {med(a, 'half', '{:.0f}')} "
              f"| {med(m, 'outside')} / {med(f, 'outside')} | {med(a, 'noise_x')} |")

    print("\n### Q2: missed windows: the closest stage and how far below the threshold\n")
    print("| kind | missed | best in-window score (25 / 50 / 75 %) | tail x threshold's (median) | >= 0.999 / 0.99 / 0.9 "
          "| stage of the best | best candidate emission before the second stage (median: cal / reach / lane / "
          "robust_level / day_drift) | clean copy's best on the same rows >= injected's |")
    print("|---|---|---|---|---|---|---|---|")
    for k in kinds:
        m = [r for r in by_kind[k] if r["first"] is None]
        if not m:
            print(f"| {k} | 0 | | | | | | |")
            continue
        b = np.array([r["best"] for r in m])
        ratio = np.median((1 - b) / (1 - thr))
        c = Counter(nm(r["best_code"]) for r in m)
        cm = {key: np.median([r["cand"][key] for r in m]) for key in ("cal", "reach", "lane", "robust_level", "day_drift")}
        cl = np.mean([r["clean_best_post"] >= r["best_post"] for r in m])
        print(f"| {k} | {len(m)} | {q(b, fmt='{:.4f}')} | {ratio:.1f} | {np.mean(b >= 0.999):.2f} / {np.mean(b >= 0.99):.2f}"
              f" / {np.mean(b >= 0.9):.2f} | {top(c)} | " + " / ".join(f"{v:.3f}" for v in cm.values()) + f" | {cl:.2f} |")

    print("\n### Q3: windows found: the first detection's delay and what its loss is made of\n")
    print("| kind | found | delay from onset, readings (25 / 50 / 75 %) | found before the onset | late points (floor at "
          "the onset / beyond) | first detection's stage | first >= 0.99 before the detection (share; median lead) |")
    print("|---|---|---|---|---|---|---|")
    for k in kinds:
        rs = by_kind[k]
        f = [r for r in rs if r["first"] is not None]
        if not f:
            continue
        w2 = 2.0 * len(rs)
        late = sum(1 - credit(r["first"], r["s"], r["e"]) for r in f)
        floor = sum(1 - credit(min(r["first"], r["onset"]), r["s"], r["e"]) for r in f)
        dl = [r["first"] - r["onset"] for r in f]
        pre99 = [r for r in f if r["f99"][0] is not None and r["onset"] + r["f99"][0] < r["first"]]
        lead = [r["first"] - r["onset"] - r["f99"][0] for r in pre99]
        c = Counter(nm(r["first_code"]) for r in f)
        print(f"| {k} | {len(f)} | {q(dl)} | {sum(d < 0 for d in dl)} | {100 * late / w2:.2f} ({100 * floor / w2:.2f} / "
              f"{100 * (late - floor) / w2:.2f}) | {top(c)} | {len(pre99) / len(f):.2f}; {q(lead, (50,))} |")


if __name__ == "__main__":
    main()
