"""A lane closed on a road (lane34, issue 11): from an onset on, a road sensor's occupancy is 1.5-2.5x what the time
of day and the weekday make it, or its speed 0.6-0.8x, and stays so. Every reading of it is within the road's own
range (a rush hour is as slow, as full), so the detectors' windows take it for a rush hour; the seasonal score's
short-term mean judges it against a scale that counts every rush hour's day-to-day mismatch. What finds it is the
residual against the series' own expected value (the weekday or weekend profile, road33) averaged over hours, in
units of that average's own day-to-day variation at that hour of the day (`_kernel._lane`: a road's demand differs
by +-15 % from day to day, most at its rush hours, so a plain CUSUM of the residual fires on clean days).

What is claimed, over the drawn ranges (wide random runs are in benchmarks/README.md, lane34): on a generated road
series (speed or occupancy, 5-minute readings with missed slots and jitter, a weekday / weekend day on a local clock
of UTC-8..+2, each day's demand x 0.85-1.15, starting on any weekday) the closure's best anomaly_score within half a
day of its onset is above every anomaly_score its clean copy shows after its first week (the ranking the held-out
benchmark's one threshold needs); main ranked it so in fewer draws. Beside it: the statistic decides nothing (the
detectors' scores and decisions are the same with it), and the compiled kernel computes what its source says."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import assume, given, settings as hsettings, strategies as st

from detect_series import anomaly_scores
from urbanpulse.detect import DetectionSettings, DetectorBank
from urbanpulse.detect.layout import S, SE

DAY_US = 86_400_000_000
STEP_US = 300_000_000
MONDAY = 1_699_833_600_000_000  # 2023-11-13 00:00 UTC, a Monday
WINDOW = 150  # readings after the onset the closure must be ranked within (12.5 h)


def road(seed: int, sensor: str, factor: float, start_day: int, onset_day: int,
         tz: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """A road sensor's clean and closed copies (the same noise) and timestamps: `sensor` "speed" or "occupancy" on a
    local clock drawn from `seed` (time zone, rush hours, weekend hump, peak or limit, noise, missed slots, jitter),
    starting `start_day` days after a Monday at a drawn time, the lane closed (x `factor`) from a drawn time of day
    `onset_day` days in; `tz` (hours east of UTC) replaces the drawn time zone where given. Returns (timestamps in
    µs, clean, closed, onset row)."""
    rng = np.random.default_rng(seed)
    days = onset_day + 2
    n_slots = days * 288
    keep = rng.random(n_slots) >= rng.uniform(0.03, 0.12)
    keep[0] = True
    slots = np.flatnonzero(keep)
    t0 = MONDAY + start_day * DAY_US + int(rng.integers(0, 288)) * STEP_US
    ts = t0 + slots.astype(np.int64) * STEP_US + np.round(rng.uniform(-30e6, 30e6, len(slots))).astype(np.int64)
    drawn_tz = float(rng.integers(-8, 3))
    local_h = ts / 3.6e9 + (drawn_tz if tz is None else tz)
    hour = np.mod(local_h, 24.0)
    day = np.floor(local_h / 24.0).astype(np.int64)
    weekday = np.mod(day + 3, 7) < 5  # 1970-01-01 was a Thursday
    morning, evening = rng.uniform(7.0, 8.5), rng.uniform(16.5, 18.0)
    rush = (np.exp(-0.5 * ((hour - morning) / 1.0) ** 2) + 0.95 * np.exp(-0.5 * ((hour - evening) / 1.3) ** 2)
            + 0.45 * np.exp(-0.5 * ((hour - 12.5) / 3.0) ** 2))
    hump = rng.uniform(0.5, 0.67) * np.exp(-0.5 * ((hour - 13.5) / 3.0) ** 2)
    day_x = rng.uniform(0.85, 1.15, int(day[-1] - day[0]) + 1)
    d = (0.04 + 0.96 * np.where(weekday, np.minimum(rush, 1.05), hump)) * day_x[day - day[0]]
    z = rng.normal(size=len(ts))
    onset = int(np.searchsorted(ts, t0 + onset_day * DAY_US + int(rng.integers(0, 288)) * STEP_US))
    x = np.ones(len(ts))
    x[onset:] = factor
    if sensor == "occupancy":
        peak, rel = rng.uniform(8.0, 40.0), rng.uniform(0.08, 0.20)

        def value(f: np.ndarray) -> np.ndarray:
            mean = peak * d * f
            return np.round(np.clip(mean + (rel * mean + 0.3) * z, 0.0, 100.0), 1)
    else:
        limit = rng.uniform(50.0, 110.0)
        free, depth, rel = limit * rng.uniform(0.95, 1.05), rng.uniform(0.2, 0.7), rng.uniform(0.02, 0.06)
        jam = np.clip((d - 0.4) / 0.6, 0.0, 1.0)

        def value(f: np.ndarray) -> np.ndarray:
            mean = free * f * (1.0 - depth * jam)
            return np.round(np.clip(mean + free * rel * (1.0 + (d < 0.2)) * z, 0.0, 1.1 * limit), 1)
    return ts, value(np.ones(len(ts))), value(x), onset


def ranked(seed: int, sensor: str, factor: float, start_day: int, onset_day: int) -> tuple[float, float]:
    """(the closed copy's best anomaly_score within WINDOW readings of the onset, the clean copy's highest after its
    first week)."""
    ts, clean, closed, onset = road(seed, sensor, factor, start_day, onset_day)
    a_clean, a_closed = anomaly_scores(ts, clean, closed)
    week = int(np.searchsorted(ts, ts[0] + 7 * DAY_US))
    return float(a_closed[onset:onset + WINDOW].max()), float(a_clean[week:].max())


SENSOR = st.sampled_from(["speed", "occupancy"])


def test_the_statistic_decides_nothing_and_the_kernel_computes_its_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled kernel = its interpreted source on a closed road and its clean copy (state, seasonal table with
    the per-hour mean squares, anomaly_score); with `_lane` emitting nothing the detectors' scores and
    decisions are the same (score-only), and the closed copy's anomaly_score is not (the statistic ran)."""
    import detect_reference
    from urbanpulse.detect import _kernel

    ts, clean, closed, _ = road(11, "occupancy", 2.0, 2, 15)
    settings = DetectionSettings()
    slots = np.repeat(np.arange(2, dtype=np.int64), len(ts))
    t, x = np.tile(ts, 2), np.concatenate([clean, closed])
    bank, ref = DetectorBank(settings), detect_reference.ReferenceBank(settings)
    for bk in (bank, ref):
        bk.assign(np.arange(2, dtype=np.int64), ["clean", "closed"], ["value"] * 2)
    got, want = bank.score(slots, t, x), ref.score(slots, t, x)
    assert np.array_equal(got.score, want.score)
    assert np.array_equal(got.anomaly_score, want.anomaly_score)
    assert np.array_equal(bank.state, ref.state, equal_nan=True)
    assert np.array_equal(bank.season, ref.season, equal_nan=True)
    assert bank.state[1, S["se_wk"]] == 2.0  # judged weekly: the path the statistic runs on

    lane = _kernel._lane.py_func

    def silent(st, se, sl, pr, ec, age, wk, rms, bk, dow):  # type: ignore[no-untyped-def]
        lane(st, se, sl, pr, ec, age, wk, rms, bk, dow)  # learns as before, emits nothing
        return 0.0

    silent.__name__ = "_lane"
    # the interpreted stages with `_lane` silent (interpreted_stages swaps in each stage's `py_func`)
    monkeypatch.setattr(_kernel, "STAGES", tuple(SimpleNamespace(py_func=silent) if f is _kernel._lane else f
                                                 for f in _kernel.STAGES))
    monkeypatch.setattr(_kernel, "_lane", _kernel._lane)  # restored after the test, whatever the context left
    off = detect_reference.ReferenceBank(settings)
    off.assign(np.arange(2, dtype=np.int64), ["clean", "closed"], ["value"] * 2)
    quiet = off.score(slots, t, x)
    assert np.array_equal(got.score, quiet.score)
    assert np.array_equal(got.decision, quiet.decision)
    closed_rows = got.slot == 1
    assert not np.array_equal(got.anomaly_score[closed_rows], quiet.anomaly_score[closed_rows])


@hsettings(max_examples=20, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), sensor=SENSOR, strength=st.floats(0.0, 1.0), start_day=st.integers(0, 4),
       onset_dow=st.integers(0, 2))
def test_a_closed_lane_on_a_weekly_road_is_scored_within_half_a_day(seed: int, sensor: str, strength: float,
                                                                   start_day: int, onset_dow: int) -> None:
    """A road judged weekly (road33), starting on a weekday, a lane closed from a weekday (UTC Monday-Thursday at
    a drawn time, in the series' third week): speed x 0.6-0.7 or occupancy x 2-2.5. Its anomaly_score reaches
    0.9999 within WINDOW readings of the onset (main: 38 of 50 such draws of a wide run below it; here 2 of 50, see
    benchmarks/README.md, lane34)."""
    factor = 0.7 - 0.1 * strength if sensor == "speed" else 2.0 + 0.5 * strength
    onset_day = 15 + (onset_dow - start_day - 15) % 7
    ts, clean, closed, onset = road(seed, sensor, factor, start_day, onset_day)
    bank = DetectorBank(DetectionSettings())
    bank.assign(np.zeros(1, np.int64), ["closed"], ["value"])
    sc = bank.score(np.zeros(len(ts), np.int64), ts, closed)
    assume(bank.state[0, S["se_wk"]] == 2.0)  # the statistic's domain: a series judged weekly
    best = float(np.max(sc.anomaly_score[onset:onset + WINDOW]))
    assert best >= 0.9999, f"a lane closed x {factor:.2f} ({sensor}) scored at most {best:.6f} within {WINDOW} readings"


def weak_week(se: np.ndarray) -> bool:
    """A slot's last tallied weekend (road33's tallies in its seasonal table row `se`) shows a week: its Saturday
    mispredicted by the weekday profile (mean squared residual over 2 x the weekdays' or the Friday's), its Sunday
    predicted better by the Saturday's profile than by the weekdays', its Monday better by the weekdays'."""
    wc, wfc = float(se[SE["wc"]]), float(se[SE["wfc"]])
    if min(wc, float(se[SE["wsc"]]), float(se[SE["wmc"]])) < 16:
        return False
    ref = float(se[SE["svm"]]) if wfc < 16 else min(float(se[SE["svm"]]), float(se[SE["wf"]]) / wfc)
    return bool(se[SE["wo"]] > 2.0 * wc * ref and se[SE["ws"]] > se[SE["wsw"]] and se[SE["wm"]] < se[SE["wmw"]])


@hsettings(max_examples=20, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), sensor=SENSOR, strength=st.floats(0.0, 1.0), start_day=st.integers(0, 3),
       onset_dow=st.integers(1, 3), tz=st.sampled_from([-8.0, -7.0]))
def test_a_closed_lane_is_scored_while_the_week_is_not_judged_yet(seed: int, sensor: str, strength: float,
                                                                  start_day: int, onset_dow: int, tz: float) -> None:
    """lane35: a road on a clock 7-8 hours west of UTC (its UTC Saturday begins with a Friday evening's rush, its
    UTC Monday with a Sunday evening: road33's weekly judgement does not find its week on the first weekend),
    starting Monday-Thursday, a lane closed from a drawn time of a Tuesday-Thursday (UTC) in its second week, while
    the judgement is still pending and its first weekend shows a week more weakly than the judgement asks
    (`assume`; `_kernel._week_pending`): speed x 0.6-0.65 or occupancy x 2-2.5. Its anomaly_score reaches
    0.9999 within WINDOW readings of the onset (main scores the closure only on a series judged weekly; see
    benchmarks/README.md, lane35, for the wide runs)."""
    factor = 0.65 - 0.05 * strength if sensor == "speed" else 2.0 + 0.5 * strength
    onset_day = 7 + (onset_dow - start_day) % 7
    ts, clean, closed, onset = road(seed, sensor, factor, start_day, onset_day, tz)
    ahead = DetectorBank(DetectionSettings())
    ahead.assign(np.zeros(1, np.int64), ["closed"], ["value"])
    ahead.score(np.zeros(onset, np.int64), ts[:onset], closed[:onset])
    wk = ahead.state[0, S["se_wk"]]
    # pending, its first weekend tallied and showing a week more weakly than the judgement asks (`_week_pending`)
    assume(wk == 0.0 and weak_week(ahead.season[0]))
    (a_closed,) = anomaly_scores(ts, closed)
    best = float(np.max(a_closed[onset:onset + WINDOW]))
    assert best >= 0.9999, (f"a lane closed x {factor:.2f} ({sensor}, UTC{tz:+.0f}) before its week was judged "
                            f"scored at most {best:.6f} within {WINDOW} readings")
