"""A routine burst onset on a controlled server-like series: how high does its anomaly_score go (issue 11; onset37).

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/onset37_wide.py DRAWS SEED [BAR]

The body of tests/test_detect_burst_onset.py over DRAWS fresh random draws (numpy seeds SEED .. SEED + DRAWS - 1):
a steady server metric (level, multiplicative Student-t noise, a regular 1-minute clock) that bursts now and then
(runs of 1-6 readings at 1.5-3x its level); every burst onset after the probation that is *routine* (no further from
the level than the median of the onsets the series has shown) is judged. Prints the draws whose highest routine
onset scores at or above BAR (default: the families' pooled NAB threshold 1 - 10^-2.82), and the count."""
from __future__ import annotations

import sys

import numpy as np

from urbanpulse.detect import DetectionSettings, DetectorBank

BAR = 1.0 - 10 ** -2.82
DAILY, P_LO, CLIP = 0.5, 0.003, 15.0
N = 4000
PROBATION = 1000  # readings before an onset is judged
SHOWN = 8  # bursts the series has shown before one of its onsets is judged


def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One controlled series: its timestamps (us), values and the burst onsets judged (routine, after PROBATION)."""
    level = 10.0 ** rng.uniform(0.5, 4.0)
    df = rng.uniform(2.0, 5.0)
    noise = rng.uniform(0.02, 0.08)
    daily = rng.uniform(0.05, 0.30) if rng.random() < DAILY else 0.0
    p_burst = rng.uniform(P_LO, 0.01)
    t = np.clip(rng.standard_t(df, N), -CLIP, CLIP)
    burst = np.ones(N)
    first = []
    k = 50
    while True:
        k += int(rng.geometric(p_burst)) + 8  # bursts apart by at least 8 readings
        if k >= N - 8:
            break
        n = int(rng.integers(1, 7))
        burst[k:k + n] = rng.uniform(1.5, 3.0)
        first.append(k)
        k += n
    ts = np.arange(N, dtype=np.int64) * 300_000_000 + 1_700_000_000_000_000
    base = level * (1.0 + daily * np.cos(2 * np.pi * (ts / 3.6e9 % 24.0) / 24.0 + rng.uniform(0, 2 * np.pi)))
    x = base * burst * np.exp(noise * t)
    first = np.asarray(first, np.int64)
    dist = np.abs(x[first] / base[first] - 1.0)
    judged = [k for j, k in enumerate(first) if j >= SHOWN and k >= PROBATION and dist[j] <= np.median(dist[:j])]
    return ts, x, np.asarray(judged, np.int64)


def onset_max(seed: int) -> tuple[float, int]:
    """The highest anomaly_score on a routine onset of draw `seed` (0 where none) and its row."""
    ts, x, judged = draw(np.random.default_rng(seed))
    bank = DetectorBank(DetectionSettings())
    bank.assign(np.zeros(1, np.int64), ["s0"], ["value"])
    a = bank.score(np.zeros(len(x), np.int64), ts, x).anomaly_score
    if not len(judged):
        return 0.0, -1
    j = int(np.argmax(a[judged]))
    return float(a[judged[j]]), int(judged[j])


if __name__ == "__main__":
    draws, seed0 = int(sys.argv[1]), int(sys.argv[2])
    bar = float(sys.argv[3]) if len(sys.argv) > 3 else BAR
    fails = []
    tops = []
    for s in range(seed0, seed0 + draws):
        top, row = onset_max(s)
        tops.append(top)
        if top >= bar:
            fails.append((s, row, top))
            print(f"seed {s} row {row}: {top:.6f}", flush=True)
    q = np.quantile(tops, [0.5, 0.9, 0.99, 1.0])
    print(f"failing draws {len(fails)} of {draws} (bar {bar:.6f}); onset max quantiles 50/90/99/100 %:",
          " ".join(f"{v:.6f}" for v in q))
