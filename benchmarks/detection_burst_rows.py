"""Which of the clean server copies' top anomaly_score rows are the series' own normal bursts (issue 11; burst35).

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/detection_burst_rows.py 100 0.9985

Why: on `detection_families.py --families server,traffic` the clean server copies' rows above the pooled NAB
threshold decide the server kinds' scores; this says what those rows are. Every server kind, seeds 0 .. SEEDS-1, the
clean copy scored alone at the defaults; the rows at or above THRESHOLD after the probation (450 readings) classed by
the generator's own burst multipliers and Student-t draws (recorded while `families.server` draws them): a burst's
first reading, a reading inside a burst, the reading after one, a t-tail reading (|t| > 4), the reading after a
missed scrape, other; with the detector that scored highest on it."""
import sys
from collections import Counter
import numpy as np
sys.path.insert(0, "benchmarks")
from corpus import families
from urbanpulse.detect import DetectionSettings, DetectorBank

seeds, thr = int(sys.argv[1]), float(sys.argv[2])


class Rec:
    """A numpy Generator that records every draw (the burst mask is rebuilt from them)."""

    def __init__(self, rng):
        self.rng, self.calls = rng, []

    def __getattr__(self, name):
        f = getattr(self.rng, name)

        def g(*a, **k):
            r = f(*a, **k)
            self.calls.append((name, r))
            return r
        return g


def gen(kind: str, seed: int) -> tuple:
    """families.server's clean copy, timestamps, burst multipliers, t draws and parameters for one draw."""
    fi = list(families.ALL_KINDS).index("server")
    ki = families.ALL_KINDS["server"].index(kind)
    rec = Rec(np.random.default_rng([seed, fi, ki]))
    clean, inj, onset, params, ts = families.server(kind, rec)
    names = [c[0] for c in rec.calls]
    j = names.index("standard_t")
    t = rec.calls[j][1]
    u = rec.calls[j + 1][1]
    rest = iter(rec.calls[j + 2:])
    burst = np.ones(len(clean))
    for k in np.flatnonzero(u < params["p_burst"]):
        m = float(next(rest)[1]); L = int(next(rest)[1])  # the value is evaluated before the target
        burst[k:k + L] = m
    return clean, ts, burst, t, params


tot = Counter(); by_det = Counter(); per_kind = Counter()
n_any = 0
for kind in families.ALL_KINDS["server"]:
    for seed in range(seeds):
        clean, ts, burst, t, params = gen(kind, seed)
        bank = DetectorBank(DetectionSettings()); bank.assign(np.zeros(1, np.int64), ["s0"], ["value"])
        sc = bank.score(np.zeros(len(clean), np.int64), ts, clean)
        a = sc.anomaly_score
        rows = [r for r in np.flatnonzero(a >= thr) if r >= 450]
        n_any += bool(rows)
        gaps = np.diff(ts); med = np.median(gaps)
        for r in rows:
            b, bp = burst[r] > 1, burst[r - 1] > 1
            if b and not bp: c = "burst first"
            elif b and bp: c = "inside burst"
            elif bp: c = "burst return"
            elif abs(t[r]) > 4: c = "t tail"
            elif gaps[r - 1] > 1.5 * med: c = "after gap"
            elif (burst[max(0, r - 6):r] > 1).any(): c = "after burst (6)"
            else: c = "other"
            tot[c] += 1; per_kind[kind] += 1
            top = sc.names[int(np.argmax(sc.score[r]))]
            by_det[(c, top)] += 1
print(f"threshold {thr}: {n_any} of {4 * seeds} clean copies have a row; {sum(tot.values())} rows; "
      f"per kind {dict(per_kind)}")
for c, v in tot.most_common():
    tops = ", ".join(f"{d} {n}" for (cc, d), n in by_det.most_common() if cc == c)
    print(f"  {c}: {v}  (top detector: {tops})")
