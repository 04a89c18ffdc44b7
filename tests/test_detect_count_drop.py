"""A count series that loses part of its events (drop43, issue 11): a footfall counter, a ticket gate, a bike-share
dock or an upstream system whose counts per 5 minutes fall to 0.3-0.5 x what the time of day makes them from an onset
on, and stay there (one client platform stops reporting). Every bucket of it is within the series' own range (a
night is as quiet), so the value detectors' windows take it for a quiet hour, and lane34's additive residual is judged
only on a series judged weekly. What finds it is a ratio: the counts' slow sum (~2 h) against the sum the series' own
hour-of-day profile expects, in units of that log ratio's day-to-day variation at that hour plus the Poisson variance
of the observed sum (`_kernel._count_drop`).

What is claimed, over the drawn ranges: on a generated count series (5-minute buckets, a daily cycle on a local clock
of UTC-8..+9 peaking at 20-3,000 a bucket with a night trough of 10-40 %, a weekend of 0.8-1.2 x its weekdays, a slow
trend, negative-binomial noise), starting Monday-Thursday, whose counts drop to 0.3-0.5 x from a drawn time of a
Tuesday or Wednesday (UTC, or the day after where the drawn times of day add up past midnight) in its second or third
week, the dropped copy's anomaly_score reaches 0.999 within half a day of the onset, above every anomaly_score its
clean copy shows after its first two days (the ranking the held-out benchmark's one threshold needs); main ranked it
so in fewer draws. Not claimed (benchmarks/README.md, drop43): a weekend far from the weekdays (0.5 or 1.3 x) or a
series whose first days are a weekend: the statistic's scale learns that departure as day-to-day variation and holds
it for days, and a drop in the days after scores lower. Beside it: the statistic decides nothing (the detectors'
scores and decisions are the same with it off), and the compiled kernel computes what its source says."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from detect_series import anomaly_scores
from urbanpulse.detect import DetectionSettings, DetectorBank
from urbanpulse.detect.layout import S, SE

DAY_US = 86_400_000_000
STEP_US = 300_000_000
MONDAY = 1_699_833_600_000_000  # 2023-11-13 00:00 UTC, a Monday
WINDOW = 150  # readings after the onset the drop must be ranked within (12.5 h)
WEEKEND_X = (0.8, 1.2)  # the property's weekend, x the weekdays (the module docstring says why not wider)


def counts(seed: int, factor: float, start_day: int, onset_day: int,
           weekend_x: tuple[float, float] = (0.5, 1.3)) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """A count series' clean and dropped copies (the same noise) and timestamps: a daily cycle on a local clock drawn
    from `seed` (time zone, peak and its hour, trough, weekend factor, trend, noise), 5-minute buckets (every one
    written) starting `start_day` days after a Monday at a drawn time, the counts x `factor` from a drawn time of day
    `onset_day` days in. Returns (timestamps in µs, clean, dropped, onset row)."""
    rng = np.random.default_rng(seed)
    n = (onset_day + 2) * 288
    t0 = MONDAY + start_day * DAY_US + int(rng.integers(0, 288)) * STEP_US
    ts = t0 + np.arange(n, dtype=np.int64) * STEP_US
    local_h = ts / 3.6e9 + float(rng.integers(-8, 10))
    hour, day = np.mod(local_h, 24.0), np.floor(local_h / 24.0).astype(np.int64)
    peak, trough, peak_h = 10.0 ** rng.uniform(np.log10(20), np.log10(3000)), rng.uniform(0.1, 0.4), rng.uniform(12, 21)
    weekend = np.where(np.mod(day + 3, 7) >= 5, rng.uniform(*weekend_x), 1.0)  # 1970-01-01 was a Thursday
    trend = 1.0 + rng.uniform(-0.1, 0.2) * np.arange(n) / n
    shape = (0.5 + 0.5 * np.cos(2 * np.pi * (hour - peak_h) / 24.0)) ** rng.uniform(1.0, 2.5)
    k = rng.uniform(10.0, 100.0)
    mean = peak * (trough + (1.0 - trough) * shape) * weekend * trend * rng.gamma(k, 1.0 / k, n)
    u, z = rng.random(n), rng.normal(size=n)
    onset = int(np.searchsorted(ts, t0 + onset_day * DAY_US + int(rng.integers(0, 288)) * STEP_US))
    mult = np.ones(n)
    mult[onset:] = factor

    def draw(m: np.ndarray) -> np.ndarray:  # Poisson from the shared draws (the same noise in both copies)
        return poisson(mean * m, u, z)

    return ts, draw(np.ones(n)), draw(mult), onset


def poisson(mean: np.ndarray, u: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Poisson counts of `mean` from shared draws: by inversion of the uniforms `u` below a mean of 30, the normal
    draws `z` rounded above (so two copies of one series differ only where their means do)."""
    small = np.minimum(mean, 30.0)
    p = np.exp(-small)
    cdf, x = p.copy(), np.zeros(len(mean))
    for j in range(1, 100):
        x += u > cdf
        p = p * small / j
        cdf = cdf + p
    return np.where(mean >= 30.0, np.maximum(np.round(mean + np.sqrt(mean) * z), 0.0), x)


def ranked(seed: int, factor: float, start_day: int, onset_day: int,
           weekend_x: tuple[float, float] = (0.5, 1.3)) -> tuple[float, float]:
    """(the dropped copy's best anomaly_score within WINDOW readings of the onset, the clean copy's highest after its
    first two days)."""
    ts, clean, dropped, onset = counts(seed, factor, start_day, onset_day, weekend_x)
    a_clean, a_dropped = anomaly_scores(ts, clean, dropped)
    start = int(np.searchsorted(ts, ts[0] + 2 * DAY_US))
    return float(a_dropped[onset:onset + WINDOW].max()), float(a_clean[start:].max())


def onset_day_of(start_day: int, onset_dow: int, week: int) -> int:
    """Days from the series' start to a Tuesday (onset_dow 1) or Wednesday (2) in its `week` (1 = second)."""
    return 7 * week + (onset_dow - start_day) % 7


@hsettings(max_examples=20, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), strength=st.floats(0.0, 1.0), start_day=st.integers(0, 3),
       onset_dow=st.integers(1, 2), week=st.integers(1, 2))
def test_a_count_series_that_loses_part_of_its_events_is_ranked_within_half_a_day(
        seed: int, strength: float, start_day: int, onset_dow: int, week: int) -> None:
    """Counts x 0.3-0.5 from a drawn time of a Tuesday or Wednesday (UTC) in the series' second or third week, the
    series starting Monday-Thursday, its weekend 0.8-1.2 x its weekdays (WEEKEND_X): the dropped copy's best
    anomaly_score within WINDOW readings of the onset is at least 0.999 and above its clean copy's highest after its
    first two days (wide random runs in benchmarks/README.md, drop43)."""
    factor = 0.5 - 0.2 * strength
    best, clean_max = ranked(seed, factor, start_day, onset_day_of(start_day, onset_dow, week), WEEKEND_X)
    assert best >= 0.999 and best > clean_max, (
        f"counts x {factor:.2f} scored at most {best:.6f} within {WINDOW} readings; the clean copy {clean_max:.6f}")


def test_the_statistic_decides_nothing_and_the_kernel_computes_its_source() -> None:
    """The compiled kernel = its interpreted source on a dropped count series and its clean copy (state, seasonal
    table with the hourly counts and mean squares, anomaly_score); with `_count_drop` off the detectors' scores and
    decisions are the same (score-only), and the dropped copy's anomaly_score is not (the statistic ran). A series
    with a reading that is not a non-negative integer is no count: the statistic stops there."""
    import detect_reference

    ts, clean, dropped, _ = counts(5, 0.4, 2, onset_day_of(2, 1, 1))
    settings = DetectionSettings()
    slots = np.repeat(np.arange(2, dtype=np.int64), len(ts))
    t, x = np.tile(ts, 2), np.concatenate([clean, dropped])
    bank, ref = DetectorBank(settings), detect_reference.ReferenceBank(settings)
    off = detect_reference.ReferenceBank(settings, off_stage="_count_drop")
    for bk in (bank, ref, off):
        bk.assign(np.arange(2, dtype=np.int64), ["clean", "dropped"], ["value"] * 2)
    got, want, quiet = bank.score(slots, t, x), ref.score(slots, t, x), off.score(slots, t, x)
    assert np.array_equal(got.score, want.score)
    assert np.array_equal(got.anomaly_score, want.anomaly_score)
    assert np.array_equal(bank.state, ref.state, equal_nan=True)
    assert np.array_equal(bank.season, ref.season, equal_nan=True)
    assert np.isfinite(bank.season[:2, SE["c0"]:SE["c0"] + 24]).all()  # every hour's count learned
    assert (bank.state[:2, S["cd_no"]] == 0.0).all()  # counts: the statistic ran
    assert np.array_equal(got.score, quiet.score)
    assert np.array_equal(got.decision, quiet.decision)
    rows = got.slot == 1
    assert not np.array_equal(got.anomaly_score[rows], quiet.anomaly_score[rows])

    half = DetectorBank(settings)
    half.assign(np.zeros(1, np.int64), ["half"], ["value"])
    half.score(np.zeros(len(ts), np.int64), ts, np.where(np.arange(len(ts)) == 10, 0.5, dropped))
    assert half.state[0, S["cd_no"]] == 1.0
