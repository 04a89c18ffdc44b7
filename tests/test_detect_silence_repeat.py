"""Silence does not alert on a gap the series has already shown (issue 11 point 4 and the alert budget; rep41).

A 5-minute machine sensor or scraped metric that skips one to three readings now and then (0.5-3 % of its slots
in runs of 1-3) is sampling normally: before rep41 silence alerted on such a series' first several runs of two or
three missed readings (a gap of 3-4 median gaps: the rarity of long gaps, gap31, judges only once five long gaps
are counted), so 400 of 459 clean machine copies of blind40 raised a silence alert. Here, over generated series
with that missed-reading process (as `benchmarks/corpus/families._clock_ts`: an exact drawn share of the slots, in
runs placed after distinct readings, timestamps jittered by up to 10 s):
- no silence decision on a gap no longer than one the series has shown before it since its warm-up (`min_history`
  readings; only a new longest gap may alert: the first run of two missed readings on a series that never missed
  one is still news);
- a dropout of 15 or more missed readings (a gap of 16+ slots, well beyond any the series showed) is decided on
  the reading after it, and the live check (`check_silence`) finds it while the series is quiet but not the
  series' longest usual gap. (Not 10: where 3 % of the slots are missed singly, a window of 32 gaps now and then
  holds four 2-slot gaps, so the learned spread, q90 - median, is one slot and the interval 5 slots, silent from 15
  slots: det20's irregularity, as on main.)
Deterministic (`derandomize=True`); the wide runs are in benchmarks/README.md, silence41.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from urbanpulse.detect import DetectionSettings, DetectorBank

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from corpus.families import STEP5_US as STEP_US, _clock_ts  # noqa: E402

N = 3000
ONSET = 2000
MIN_HISTORY = 32  # silence's `min_history`: no gap is judged before it


def _bank() -> DetectorBank:
    bank = DetectorBank(DetectionSettings())
    bank.assign(np.zeros(1, np.int64), ["s0"], ["value"])
    return bank


def _silence(ts: np.ndarray, x: np.ndarray) -> np.ndarray:
    sc = _bank().score(np.zeros(len(x), np.int64), ts, x)
    return sc.decision[:, sc.names.index("silence")]


missed = dict(
    seed=st.integers(0, 2**32 - 1),
    missing=st.floats(0.005, 0.03),  # of the grid's slots
    max_run=st.integers(1, 3),
    jitter_s=st.floats(0.0, 10.0),
    dropout=st.integers(15, 288),  # missed readings of the dropout (up to a day)
)


@given(**missed)
@hsettings(max_examples=60, deadline=None, derandomize=True)
def test_gaps_the_series_has_shown_are_not_silence_and_a_dropout_is(seed: int, missing: float, max_run: int,
                                                                   jitter_s: float, dropout: int) -> None:
    rng = np.random.default_rng(seed)
    ts = _clock_ts(N, missing, max_run, jitter_s * 1e6, rng)
    x = np.round(20 + rng.normal(0, 0.3, N), 2)
    d = _silence(ts, x)
    gaps = np.diff(ts)
    # shown[i - 1]: the longest gap from the warm-up up to reading i
    shown = np.maximum.accumulate(np.r_[np.zeros(MIN_HISTORY, np.int64), gaps[MIN_HISTORY:]])
    alerted = [i for i in np.flatnonzero(d) if i > MIN_HISTORY + 1]
    repeats = [i for i in alerted if gaps[i - 1] <= shown[i - 2]]
    assert repeats == [], f"silent on gaps the series had shown: {[(i, gaps[i - 1] / STEP_US) for i in repeats]}"
    # a dropout of `dropout` missed readings from ONSET on: decided on the reading after it
    ts2 = ts.copy()
    ts2[ONSET:] += np.int64(dropout) * STEP_US
    d2 = _silence(ts2, x)
    assert d2[ONSET]
    # the live check during the dropout: the series' longest usual gap is not silent, the dropout is
    bank = _bank()
    bank.score(np.zeros(ONSET, np.int64), ts[:ONSET], x[:ONSET])
    last = int(ts[ONSET - 1])
    usual = int(np.max(np.diff(ts[MIN_HISTORY:ONSET])))
    slot = np.zeros(1, np.int64)
    assert len(bank.check_silence(slot, np.array([last + usual]), 0).slot) == 0
    quiet = last + (dropout + 1) * STEP_US - int(jitter_s * 1e6)
    assert len(bank.check_silence(slot, np.array([quiet]), 0).slot) == 1
