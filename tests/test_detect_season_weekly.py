"""The seasonal score on a weekly series (road33, issue 11): a road's or an office's series has weekdays with a day
(rush hours, working hours) and weekends without it. One profile of the UTC day learned both kinds of day: each
weekend read as a changed day, and its residuals inflated the long-run RMS that scores the weekdays, so far that the
learned day's range stayed below `likelihood_season_min_amplitude` residual RMS and the seasonal score never ran on
such a series (every `traffic` family draw traced in benchmarks/README.md, traffic32: range / RMS 2.4-5.8, the gate
is 8). A weekend profile for every series cost the series without a week (traffic32: their first weekend left out of
the scales). Now each series' first Saturday (UTC) with a learned RMS is judged: scored and learned as before, and
beside it tallied against the weekday profile; where its mean squared residual mean is over WEEKLY_K x the weekdays'
the series is weekly: the weekday bins and the RMS go back to what that Saturday found, Saturdays and Sundays get a
profile of their own, and the amplitude gate is WEEKLY_AMP_X of the setting (a series that has shown a day and a
week). Elsewhere nothing changes.

What is claimed, over the drawn ranges (wide random runs are in benchmarks/README.md, road33): after three weeks of
a clean weekly series (weekdays of 96-288 readings, any phase, night floor 2-30 %, weekends flat at 20-80 % of the
weekday mean, Gaussian noise 1-5 % of the peak, starting on any weekday at any time) the seasonal score's gate is
open (main: closed in every draw); a series without a week scores the same whatever weekday it starts on; the
compiled kernel computes what its source says across weekends."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings as hsettings, strategies as st

from detect_reference import ReferenceBank
from urbanpulse.detect import DetectionSettings, DetectorBank
from urbanpulse.detect.layout import S, SE, SEASON_BINS

DAY_US = 86_400_000_000
MONDAY = 1_699_833_600_000_000  # 2023-11-13 00:00 UTC, a Monday
WEEKLY_AMP_X = 0.5  # the kernel's (`_kernel.WEEKLY_AMP_X`), written out so this file also runs against main's kernel


def weekly_rate(seed: int, period: int, peak: float, floor: float, noise: float, start_day: int, weekend: float,
                days: int = 21, weekly: bool = True, clock_us: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Weekdays: a day like the rate family's (a night floor of `floor` x the peak, a squared-cosine day at a phase
    drawn from `seed`); Saturdays and Sundays (UTC) flat at `weekend` x the weekdays' mean (`weekly`; else every day
    a weekday); Gaussian noise of `noise` x the peak, rounded to 0.1; `period` readings a day from `start_day` days
    after a Monday at a drawn time of day. Returns (timestamps in µs, values)."""
    rng = np.random.default_rng(seed)
    n = days * period
    step = DAY_US // period
    clock = int(rng.integers(0, DAY_US)) if clock_us is None else clock_us
    ts = MONDAY + start_day * DAY_US + clock + np.arange(n, dtype=np.int64) * step
    pos = 2 * np.pi * (ts % DAY_US) / DAY_US + rng.uniform(0, 2 * np.pi)
    day = floor + (1 - floor) * (0.5 - 0.5 * np.cos(pos)) ** 2
    at_weekend = (np.mod(ts // DAY_US + 3, 7) >= 5) & weekly  # 1970-01-01 was a Thursday
    mean = peak * np.where(at_weekend, weekend * (floor + (1 - floor) * 0.375), day)
    return ts, np.round(np.maximum(mean + noise * peak * rng.normal(size=n), 0.0), 1)


def scored(ts: np.ndarray, x: np.ndarray) -> DetectorBank:
    """A bank that has scored the series in one batch."""
    bank = DetectorBank(DetectionSettings())
    bank.assign(np.zeros(1, np.int64), ["s0"], ["value"])
    bank.score(np.zeros(len(x), np.int64), ts, x)
    return bank


def gate_margin(bank: DetectorBank) -> float:
    """The weekday profile's range in residual RMS over the amplitude gate that applies to the series (the seasonal
    score can run where this is at least 1)."""
    bins = bank.season[0, :SEASON_BINS].astype(np.float64)
    ratio = (bins.max() - bins.min()) / np.sqrt(np.float64(bank.season[0, SE["ve"]]))
    weekly = "se_wk" in S and bank.state[0, S["se_wk"]] == 2.0
    gate = DetectionSettings().fusion.likelihood_season_min_amplitude * (WEEKLY_AMP_X if weekly else 1.0)
    return float(ratio / gate)


@hsettings(max_examples=30, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), period=st.integers(96, 288), peak=st.floats(100.0, 5000.0),
       floor=st.floats(0.02, 0.3), noise=st.floats(0.01, 0.05), start_day=st.integers(0, 6),
       weekend=st.floats(0.2, 0.8))
@example(seed=1, period=96, peak=300.0, floor=0.2, noise=0.05, start_day=4, weekend=0.8)  # starts on a Friday
@example(seed=2, period=288, peak=100.0, floor=0.3, noise=0.05, start_day=5, weekend=0.2)  # ... on a Saturday
def test_a_weekly_series_weekends_do_not_close_the_seasonal_gate(seed: int, period: int, peak: float, floor: float,
                                                                  noise: float, start_day: int,
                                                                  weekend: float) -> None:
    """Three weeks of a weekly series: the weekday profile's range is at least the gate (main: 3.2-6.1 residual RMS
    against a gate of 8 in every draw of a wide run)."""
    ts, x = weekly_rate(seed, period, peak, floor, noise, start_day, weekend)
    margin = gate_margin(scored(ts, x))
    assert margin >= 1.0, f"the weekday profile's range is only {margin:.2f} x the gate: the weekends closed it"


@hsettings(max_examples=10, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), period=st.integers(96, 288), peak=st.floats(100.0, 5000.0),
       floor=st.floats(0.02, 0.3), noise=st.floats(0.01, 0.05), start_day=st.integers(0, 6))
def test_a_series_without_a_week_scores_alike_on_any_weekday(seed: int, period: int, peak: float, floor: float,
                                                             noise: float, start_day: int) -> None:
    """A clock-daily series without a week (every day a weekday), 16 days, and the same readings a day later on the
    clock: the same scores, the same profile and scales (nothing of the weekly judgement is read where the series is
    not weekly; a judgement that read the weekday would differ here), and neither is judged weekly."""
    ts, x = weekly_rate(seed, period, peak, floor, noise, start_day, 1.0, days=16, weekly=False)
    runs = []
    for shift in (0, DAY_US):
        bank = DetectorBank(DetectionSettings())
        bank.assign(np.zeros(1, np.int64), ["s0"], ["value"])
        out = bank.score(np.zeros(len(x), np.int64), ts + shift, x)
        runs.append((out.score, out.anomaly_score, bank.season[0, :SE["n"] + 1].copy(), bank.state[0, S["se_wk"]]))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert np.array_equal(runs[0][1], runs[1][1])
    assert np.array_equal(runs[0][2], runs[1][2], equal_nan=True)
    assert runs[0][3] != 2.0 and runs[1][3] != 2.0  # not judged weekly


def test_a_weekly_series_is_judged_after_its_first_weekend_and_the_weekend_taken_back() -> None:
    """Two weeks from a Monday 00:00: the first Saturday starts the judgement, the Tuesday after it ends it (weekly);
    then the residual's long-run scales and the level are back to what that Saturday found (the one reading since
    learned), and the weekend bins hold the flat weekend."""
    ts, x = weekly_rate(11, 144, 800.0, 0.1, 0.02, 0, 0.5, days=14, clock_us=0)
    bank = DetectorBank(DetectionSettings())
    bank.assign(np.zeros(1, np.int64), ["s0"], ["value"])
    half_hour = DAY_US // 48  # a reading's day is its bin centre's before it: Saturday's from 00:30
    edges = (0, 5 * DAY_US + half_hour + 1, 8 * DAY_US + half_hour, 8 * DAY_US + half_hour + 1)
    tables, judged = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):  # to Saturday's first reading, to Tuesday's, that reading
        part = (ts >= MONDAY + lo) & (ts < MONDAY + hi)
        bank.score(np.zeros(int(part.sum()), np.int64), ts[part], x[part])
        tables.append(bank.season[0].copy())
        judged.append(bank.state[0, S["se_wk"]])
    assert judged == [1.0, 1.0, 2.0]
    saturday = tables[0]
    assert bank.season[0, SE["n"]] == saturday[SE["sn"]] + 1  # put back, then the Tuesday reading learned
    assert tables[1][SE["n"]] > saturday[SE["sn"]] + 400  # (the weekend and Monday had taught it as before)
    weekday = bank.season[0, :SEASON_BINS].astype(np.float64)
    weekend = bank.season[0, SE["w0"]:SE["w0"] + SEASON_BINS].astype(np.float64)
    assert np.isfinite(weekend).all()
    inner = weekend[1:-1]  # the bins by midnight also learn the weekdays' readings their interpolation reaches
    assert inner.max() - inner.min() < 0.25 * (weekday.max() - weekday.min())


def test_the_kernel_computes_what_its_source_says_across_weekends() -> None:
    """Bit-identity of the compiled kernel and its interpreted source (tests/detect_reference.py) on two weekly
    series (one starting on a Saturday: its weekday profile is the second one seen) and one without a week, in four
    batches."""
    series = [weekly_rate(3, 96, 300.0, 0.05, 0.02, 2, 0.4, days=10), weekly_rate(4, 96, 900.0, 0.2, 0.03, 5, 0.7,
                                                                                  days=17),
              weekly_rate(5, 144, 500.0, 0.1, 0.02, 3, 1.0, days=10, weekly=False)]
    slots = np.concatenate([np.full(len(v), i, np.int64) for i, (_, v) in enumerate(series)])
    t = np.concatenate([s[0] for s in series])
    x = np.concatenate([s[1] for s in series])
    order = np.argsort(t, kind="stable")
    settings = DetectionSettings()
    bank, ref = DetectorBank(settings), ReferenceBank(settings)
    for bk in (bank, ref):
        bk.assign(np.arange(3), ["a", "b", "c"], ["value"] * 3)
    for part in np.array_split(order, 4):
        got, want = bank.score(slots[part], t[part], x[part]), ref.score(slots[part], t[part], x[part])
        assert np.array_equal(got.score, want.score)
        assert np.array_equal(got.anomaly_score, want.anomaly_score)
    assert np.array_equal(bank.season, ref.season, equal_nan=True)
    assert np.array_equal(bank.state, ref.state, equal_nan=True)
    assert bank.state[0, S["se_wk"]] == 2.0 and bank.state[2, S["se_wk"]] != 2.0  # the weekly path ran
