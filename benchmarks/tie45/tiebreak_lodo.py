"""LODO (channel and station) of the dev set's anomaly_score with ties broken by evidence (rank transform)."""

import sys
import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1]))
import detection_dev as dd, detection_devset as devset

z = np.load(sys.argv[1])
sc, dg, offs = z["score"], z["diag"], z["offs"]
files = devset.load(False)


def lodo(score):
    runs = {f.name: score[offs[k] : offs[k + 1]] for k, f in enumerate(files)}
    lo = dd.lodo(files, {"d": runs})
    sfiles, st = devset.stations(files, runs, "sidak")
    los = dd.lodo(sfiles, {"d": st})
    return (
        f"channel {lo['mean']:.3f} / {lo['worst']:.3f} "
        + " ".join(f"{d} {lo[d]['held_out']:.3f}" for d in devset.DATASETS)
        + f" | station {los['mean']:.3f} / {los['worst']:.3f} "
        + " ".join(f"{d} {los[d]['held_out']:.3f}" for d in devset.DATASETS)
    )


extra = sys.argv[2:]
print("main      ", lodo(sc))
if "all" in extra:
    from rows import spread_ties

    print("spread rc,y", lodo(spread_ties(sc, dg[:, 3], dg[:, 2])))
    print("spread -y ", lodo(spread_ties(sc, -dg[:, 2])))
