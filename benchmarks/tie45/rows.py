import sys
import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1]))
import nab_score

#: the instrumented kernel's stage codes (diag column 0; +100: burst35 / onset37 floored the tail)
STAGE_NAMES = {
    10: "value?",
    11: "robust_z",
    12: "ewma",
    13: "spike",
    14: "flatline",
    15: "threshold",
    20: "silence",
    30: "likelihood",
    40: "reach",
    50: "lane",
    51: "count_drop",
    60: "period",
    70: "robust_level",
    80: "fl_offer",
    0: "none",
}


def stage_name(c) -> str:
    """A stage code as its name ('+bf' where the tail was floored by burst35 / onset37)."""
    c = int(c)
    return STAGE_NAMES.get(c % 100, str(c)) + ("+bf" if c >= 100 else "")


class Fam:
    def __init__(self, path):
        z = np.load(path)
        self.sc, self.dg, self.offs, self.names, self.wins, self.ts = (
            z["score"],
            z["diag"],
            z["offs"],
            z["names"],
            z["wins"],
            z["ts"],
        )
        self.nf = len(self.names)
        self.wd = {n: [] for n in self.names}
        for i, lo, hi in self.wins:
            self.wd[self.names[i]].append((int(lo), int(hi)))
        self.fid = np.repeat(np.arange(self.nf), np.diff(self.offs))
        self.inwin = np.zeros(len(self.sc), bool)
        for i, lo, hi in self.wins:
            self.inwin[self.offs[i] + lo : self.offs[i] + hi + 1] = True

    def corpus(self, score, threshold=None, subset=None):
        o = self.offs
        ser = {
            n: nab_score.FileSeries(n, self.ts[o[i] : o[i + 1]], score[o[i] : o[i + 1]])
            for i, n in enumerate(self.names)
        }
        return nab_score.score_corpus(ser, self.wd, "standard", threshold=threshold)


def rank_score(sc, *keys):
    """Order-preserving tie-break: rank by score, then by each key; scaled into (0, 1); zeros stay 0."""
    idx = np.flatnonzero(sc > 0)
    order = np.lexsort(tuple(k[idx] for k in keys[::-1]) + (sc[idx],))
    out = np.zeros_like(sc)
    r = np.empty(len(idx))
    r[order] = np.arange(1, len(idx) + 1)
    out[idx] = r / (len(idx) + 1.0)
    return out


def spread_ties(sc, *keys):
    """Order-preserving tie-break that keeps values: each group of rows with one score v (v > 0) is spread over
    [v, v + d) in the order of the keys, d half the gap to the next distinct score (or to 1)."""
    out = sc.copy()
    idx = np.flatnonzero(sc > 0)
    order = np.lexsort(tuple(k[idx] for k in keys[::-1]) + (sc[idx],))
    s = sc[idx][order]
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    ends = np.r_[starts[1:], len(s)]
    for a, b in zip(starts, ends):
        if b - a < 2:
            continue
        v = s[a]
        nxt = s[b] if b < len(s) else 1.0
        d = 0.5 * (nxt - v)
        k = np.arange(b - a)
        out[idx[order[a:b]]] = v + d * k / (b - a)
    return out
