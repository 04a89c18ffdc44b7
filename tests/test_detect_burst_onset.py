"""A burst's first reading on a server metric that bursts routinely is not scored as rarer than its own bursts'
onsets, while a reading far beyond anything the series has shown, or a level shift beyond its bursts, is still found
(issue 11; first36).

A server metric bursts now and then (a batch job, a cache flush: 1-6 readings at 1.5-3x its level). burst35 floored
the point emission on a burst's later readings by the series' own burst rate but left its first reading alone (at
its first reading a server burst looks like one of GECCO's one-reading events): after burst35, 572 of the 832 rows of
the clean server copies of `detection_families.py --families server,traffic` above the pooled NAB threshold (~0.9985)
were bursts' first readings. A run's first reading now has a tail of at least 4x the series' own rate of onsets at
least that large, learned from its onsets that held (the reading after them still far: a burst, not a one-reading
spike), once it has shown a few; so, on the generator's own clean server copies (`corpus.families.server`):
- a burst's first reading, after the series has shown 8 bursts and no larger than their median multiple, scores
  below 1 - 10^-2.82 (the family's pooled threshold);
- a reading 3x as far from the level as anything the series has shown still scores at least 1 - fusion.alert_tail
  and spike decides on it;
- a level shift to twice the series' highest reading, held, scores at least 1 - 10^-2.82 on its first reading.
Deterministic (`derandomize=True`); the wide runs (random draws) are in benchmarks/README.md, first36.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from corpus import families  # noqa: E402

from urbanpulse.detect import DetectionSettings, DetectorBank  # noqa: E402

BAR = 1.0 - 10 ** -2.82  # the families' pooled NAB threshold
PROBATION = 450  # readings before the families' NAB scoring counts a row
SHOWN = 8  # bursts the series has shown before one of its onsets is judged


class _Rec:
    """A numpy Generator that records its draws (the clean copy's burst mask is rebuilt from them)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.calls = rng, []

    def __getattr__(self, name: str):
        f = getattr(self.rng, name)

        def g(*a, **k):
            r = f(*a, **k)
            self.calls.append((name, r))
            return r
        return g


def server_clean(seed: int, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """families.server's clean copy for one draw, its timestamps, its burst multiples (1 outside a burst) and its
    level (as benchmarks/detection_burst_rows.py rebuilds them)."""
    fi = list(families.ALL_KINDS).index("server")
    rec = _Rec(np.random.default_rng([seed, fi, families.ALL_KINDS["server"].index(kind)]))
    clean, _, _, params, ts = families.server(kind, rec)
    names = [c[0] for c in rec.calls]
    j = names.index("standard_t")
    u = rec.calls[j + 1][1]
    rest = iter(rec.calls[j + 2:])
    burst = np.ones(len(clean))
    for k in np.flatnonzero(u < params["p_burst"]):
        m = float(next(rest)[1])
        n = int(next(rest)[1])
        burst[k:k + n] = m
    return clean, ts, burst, float(params["level"])


def score(ts: np.ndarray, x: np.ndarray):
    """The series scored alone at the defaults."""
    bank = DetectorBank(DetectionSettings())
    bank.assign(np.zeros(1, np.int64), ["s0"], ["value"])
    return bank.score(np.zeros(len(x), np.int64), ts, x)


def routine_onsets(burst: np.ndarray) -> np.ndarray:
    """The bursts' first readings judged: after SHOWN earlier bursts and the probation, a multiple no larger than the
    earlier bursts' median."""
    first = np.flatnonzero((burst > 1) & (np.r_[1.0, burst[:-1]] == 1))
    return np.array([k for j, k in enumerate(first)
                     if j >= SHOWN and k >= PROBATION and burst[k] <= np.median(burst[first[:j]])], np.int64)


def judge(seed: int, kind: str) -> tuple[float, bool, float, float]:
    """The highest score on a routine onset (0 where none), the far reading's spike decision and score, the level
    shift's first reading's score."""
    clean, ts, burst, level = server_clean(seed, kind)
    on = routine_onsets(burst)
    a = score(ts, clean).anomaly_score
    onset = float(a[on].max()) if len(on) else 0.0
    at = families.ONSET + int(np.flatnonzero(burst[families.ONSET:] == 1.0)[0])
    far_x = clean.copy()
    far_x[at] = level + 3.0 * float(np.max(np.abs(clean[:at] - level)))
    far = score(ts, far_x)
    shift_x = clean.copy()
    shift_x[at:] = clean[at:] + 2.0 * float(np.max(clean[:at]))
    shift = float(score(ts, shift_x).anomaly_score[at])
    return onset, bool(far.decision[at, far.names.index("spike")]), float(far.anomaly_score[at]), shift


@given(seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(list(families.ALL_KINDS["server"])))
@hsettings(max_examples=40, deadline=None, derandomize=True)
def test_a_routine_bursts_first_reading_stays_below_the_bar_and_an_out_of_pattern_reading_is_found(
        seed: int, kind: str) -> None:
    onset, far_decided, far, shift = judge(seed, kind)
    assert onset < BAR, onset
    assert far_decided
    assert far >= 1.0 - DetectionSettings().fusion.alert_tail, far
    assert shift >= BAR, shift
