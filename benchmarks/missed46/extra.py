"""missed46: extra Q2/Q3 columns: for missed windows, the share of the run's clean copies whose largest score after
probation reaches the window's best (what lowering the threshold to it would admit); for late windows, the stage
of the first >= 0.99 score from the onset and of the first detection, and their delays."""
import pickle, sys
from collections import Counter
import numpy as np
sys.path.insert(0, "/tmp/missed46")
from summary import nm, top  # noqa


def main():
    W = pickle.load(open(sys.argv[1], "rb"))
    thr = W["thr"]
    rows = W["rows"]
    # per clean copy: its largest score after probation is not in windows.pkl; use clean_best_pre/post as a proxy
    cmax = np.array([max(r["clean_best_pre"], r["clean_best_post"]) for r in rows])
    by = {}
    for r in rows:
        by.setdefault(f"{r['fam']}:{r['kind']}", []).append(r)
    print(f"threshold {thr!r}; clean copies (all kinds of the run) with a score >= t before the window's end: "
          f">= thr {np.mean(cmax >= thr):.2f}, >= 0.999 {np.mean(cmax >= 0.999):.2f}, >= 0.995 {np.mean(cmax >= 0.995):.2f}, >= 0.99 {np.mean(cmax >= 0.99):.2f}\n")
    print("| kind | missed | clean copies reaching the missed window's best (median share) | late windows (delay > 10) "
          "| stage of the first >= 0.99 from the onset (late) | its delay (median) | first detection's delay (median) |")
    print("|---|---|---|---|---|---|---|")
    for k, rs in by.items():
        m = [r for r in rs if r["first"] is None]
        reach = np.median([np.mean(cmax >= r["best"]) for r in m]) if m else float("nan")
        late = [r for r in rs if r["first"] is not None and r["first"] - r["onset"] > 10]
        c = Counter(nm(r["f99"][1]) for r in late)
        d99 = [r["f99"][0] for r in late if r["f99"][0] is not None]
        dd = [r["first"] - r["onset"] for r in late]
        print(f"| {k} | {len(m)} | {reach:.2f} | {len(late)} | {top(c)} | "
              f"{np.median(d99) if d99 else float('nan'):.0f} | {np.median(dd) if dd else float('nan'):.0f} |")


main()
