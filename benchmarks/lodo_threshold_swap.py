"""Which dataset's rows move a held-out dataset's LODO threshold: two trees' per-row anomaly_score compared.

    python benchmarks/lodo_threshold_swap.py --main /tmp/main.npz --branch /tmp/branch.npz [--key 'b:b5k:{}']

Why: the per-channel LODO chooses each held-out dataset's threshold on the other five datasets' rows, so a change
can lower a dataset it never touches (exit40: SKAB 67.3 -> 62.8, its threshold 0.99532 -> 0.99597). The caches are
`detection_choose.py --cache` files of the two trees, with the same tag and candidate. For each dataset this prints
how many rows and files the branch changed, and how many rows newly reach 0.995 (in windows or not). Then, for each
held-out dataset, it prints the threshold and score on main and on the branch, and with each other dataset's rows
swapped back to main's: the dataset whose swap restores main's threshold is the one that moved it (exit41: GECCO).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import detection_dev as dd  # noqa: E402
import detection_devset as devset  # noqa: E402
import nab_score  # noqa: E402

HIGH = 0.995


def per_file(files, path: Path, key: str) -> dict[str, np.ndarray]:
    """The cache's flat anomaly_score split into the dev set's files (detection_choose.score_all's order)."""
    flat = np.load(path)[key]
    offs = np.cumsum([0] + [len(f.values) for f in files])
    return {f.name: flat[offs[k]:offs[k + 1]] for k, f in enumerate(files)}


def chosen(files, scores: dict[str, np.ndarray], hold: str) -> tuple[float, float]:
    """The pooled threshold chosen without `hold`, and `hold`'s NAB score at it."""
    ser, win = dd._series([f for f in files if f.dataset != hold], scores)
    t = nab_score.score_corpus(ser, win, "standard").threshold
    ser, win = dd._series([f for f in files if f.dataset == hold], scores)
    return t, nab_score.score_corpus(ser, win, "standard", threshold=t).normalized


def changed_rows(files, m: dict[str, np.ndarray], b: dict[str, np.ndarray], ds: str) -> str:
    """One dataset's changed rows and files, and its rows newly at HIGH or above (and how many in windows)."""
    fs = [f for f in files if f.dataset == ds]
    rows = sum(int((m[f.name] != b[f.name]).sum()) for f in fs)
    nf = sum(1 for f in fs if (m[f.name] != b[f.name]).any())
    up = inw = 0
    for f in fs:
        new = (b[f.name] >= HIGH) & (m[f.name] < HIGH)
        inside = np.zeros(len(f.values), bool)
        for s, e in f.windows:
            inside[s:e + 1] = True
        up += int(new.sum())
        inw += int((new & inside).sum())
    return f"{ds}: rows changed {rows}, files changed {nf}/{len(fs)}, newly >= {HIGH} {up} (in windows {inw})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--main", type=Path, required=True)
    ap.add_argument("--branch", type=Path, required=True)
    ap.add_argument("--key", default="b:b5k:{}")
    a = ap.parse_args()
    files = devset.load()
    m, b = per_file(files, a.main, a.key), per_file(files, a.branch, a.key)
    for ds in devset.DATASETS:
        print(changed_rows(files, m, b, ds))
    for hold in devset.DATASETS:
        (tm, sm), (tb, sb) = chosen(files, m, hold), chosen(files, b, hold)
        line = f"{hold} held out: main t={tm:.5f} {sm:.2f} | branch t={tb:.5f} {sb:.2f} |"
        for sw in devset.DATASETS:
            if sw != hold:
                mix = dict(b)
                mix.update({f.name: m[f.name] for f in files if f.dataset == sw})
                t, sc = chosen(files, mix, hold)
                line += f" {sw}->main t={t:.5f} {sc:.1f}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
