"""Seeded series of the shapes the held-out benchmark holds and the development set under-represents, each with
one injected anomaly and a clean copy: a sweep of which injected kinds the detectors miss (issue 11, det25).

Why: the development set (`synthetic.py` and the real datasets) has few on/off series of other scales than ~60,
few rates with a daily period, few slow temperatures; the held-out benchmark (road traffic, server and cloud
metrics, machine temperatures, online systems' rates and volumes, synthetic series) has many. A draw here is
one point of a wide family (level, offset, noise, resolution drawn per series), so a miss is a property of a
shape, not of one file. `benchmarks/detection_families.py` runs the sweep; tests draw from the same functions.

Families and kinds (`KINDS`):
- `onoff`: a pump, a lane at night, a server's batch job: idle (0, or an offset of 1-200 % of the active level,
  with the active noise) and bursts of 2-50 readings at the idle plus an active level of 0.1-10,000 (noise
  0.5-10 %, a start probability of 1-12 % a reading, resolution 10 / 1 / 0.1 % of the level). Kinds:
  `level_shift` (every burst from the onset on rises twice as far above idle), `spike_after_idle` (after 65-3,000
  idle readings a burst whose first reading is 10x the active level), `stuck` (from the onset the value holds at
  an active reading);
- `rate`: requests or vehicles per interval with a daily period of 96 / 144 / 288 readings (a night floor, a day
  peak of 5-5,000, Poisson counts or a Gaussian rate with 2-10 % noise, rounded to the count or 0.1 %). Kinds:
  `level_shift` (x 0.4-0.6 or x 1.6-2.5 from the onset on), `period` (the day is half as long from the onset on),
  `spike` (one reading 4-8x the day peak);
- `temperature`: a machine's temperature, a level of 20-90 with a slow trend (up to 3 degrees over the series),
  a daily swing of 0-3 degrees and AR(1) noise of 0.05-0.5 degrees, resolution 0.1 or 0.01. Kinds: `stuck` (the
  value holds at its onset reading), `drift` (a ramp of 8-15 noise sigmas over 100-300 readings, then holds),
  `spike` (8-12 noise sigmas, one reading);
- `sparse`: a quantised mostly-zero count (Poisson of 0.02-0.3 a reading, x a unit of 0.1-1). Kinds: `level_shift`
  (the rate x 5-10 from the onset on).

Every series has `ROWS` readings one minute apart, except a `rate`, whose readings are 86,400 s / its period apart
(15 / 10 / 5 minutes: its day is a clock day, as a road's or an online system's is, so a model of the time of day
sees it; season29); the anomaly starts at `ONSET` (after NAB's 15 % probation and a long history to learn from),
except `spike_after_idle`, whose onset is the burst's first row.

Two more families (`EXTRA_KINDS`, fam30), **not in the default sweep** (`KINDS`), so the sweep's figure on the four
above stays comparable across sessions; `detection_families.py --families server,traffic` runs them. Their readings
are nominally 5 minutes apart on the clock (the held-out benchmark's server metrics and road sensors are), with
missed readings (the slot skipped: no NaN, the next reading comes late) and a jitter of the timestamps below half a
step; `ROWS` readings are kept, so the onset is row `ONSET` of the readings, not of the grid.
- `server`: a cloud or server metric, one of three drawn with equal chance: CPU % (a level of 5-50 %, additive
  noise, clipped to 0-100), request latency (a level of 3-1,000 ms) or network bytes (1e3-1e9 a reading), the last
  two with multiplicative noise (exp of the noise: a heavy right tail, never below 0). The noise is Student-t with
  2-5 degrees of freedom (df 2: a reading beyond 10 scales every ~100 readings, as a scraped metric has) clipped to
  +-15, scale 2-10 % of the level (the "scale" below, the long-run noise scale); normal bursts on top (a batch
  job, a cache flush): a start chance of 0.2-1 % a reading, 1-6 readings at 1.5-3x the level. Half the series have
  a weak daily cycle (an amplitude of 5-30 % of the level, a drawn phase: traffic to a service follows the clock
  but a server's load is not a road's), half none. Half the series miss scrapes: 1-8 % of the grid's slots, in runs
  of 1-6 (a scraper restarts, a node is briefly unreachable); timestamps jitter by up to 0-10 s. Resolution: the
  largest power of ten at most half a scale (CPU at least 0.01, bytes at least 1), so the noise is never quantised
  away. Kinds: `level_shift` (from the onset the level moves by 3-6 scales, up or down: a deploy, a config change,
  a new tenant), `spike` (one reading 1.2-2x as far from the level as the furthest reading of the history, bursts
  included, so it is out of the series' own range, as a real incident is; CPU capped at 100; at the first reading
  from `ONSET` on outside a normal burst and below that value, so a CPU at 100 is not "spiked"), `noise` (from the
  onset the noise scale x 2-3.5, variance x 4-12: a flapping dependency, a noisy neighbour), `stuck` (from the
  onset the value holds at its onset reading: an agent reporting a cached value);
- `traffic`: a road sensor, speed or occupancy with equal chance, on a local clock (a time zone of UTC-8 to +2:
  rush hours fall at any UTC hour) with a weekday cycle: weekdays have a morning (7-8.5 h) and an evening
  (16.5-18 h) peak of demand over a midday plateau and a night floor, weekends one broad midday hump at half to
  two-thirds of it; each day's demand x 0.85-1.15 (days differ). Occupancy (0-100 %): a weekday peak of 8-40 %,
  relative noise 8-20 % plus 0.3 points, resolution 1 or 0.1. Speed: a limit of 50-110 (km/h or mph), free flow
  0.95-1.05x it, dips where demand passes 40 % of its peak to 30-80 % of free flow at the heaviest rush, noise
  2-6 % of free flow, doubled at night (few vehicles a 5-minute average), readings capped at 1.05-1.15x the
  limit, resolution 1 or 0.1. Missed readings 3-15 % of the slots, in runs of 1-2 to 1-30 (a detector cabinet's
  link drops), a jitter of up to 0-60 s. Kinds: `failure` (from the onset the sensor reports 0, or with equal
  chance a constant: its onset reading held), `level_shift` (a lane closed from the onset: occupancy x 1.5-2.5,
  or speed x 0.6-0.8, sustained), `spike` (one reading: occupancy 1.5-3x the history's highest, capped at 100;
  speed either 1.4-2x the limit, a spurious vehicle, or 0-20 % of free flow, a stalled one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROWS = 3000
ONSET = 2000
STEP_US = 60_000_000
DAY_US = 86_400_000_000
T0_US = 1_700_000_000_000_000

KINDS: dict[str, tuple[str, ...]] = {
    "onoff": ("level_shift", "spike_after_idle", "stuck"),
    "rate": ("level_shift", "period", "spike"),
    "temperature": ("stuck", "drift", "spike"),
    "sparse": ("level_shift",),
}
#: families outside the default sweep (fam30): `detection_families.py --families server,traffic`
EXTRA_KINDS: dict[str, tuple[str, ...]] = {
    "server": ("level_shift", "spike", "noise", "stuck"),
    "traffic": ("failure", "level_shift", "spike"),
    "periodic": ("period",),
}
ALL_KINDS: dict[str, tuple[str, ...]] = {**KINDS, **EXTRA_KINDS}
STEP5_US = 300_000_000
#: readings after the onset within which a decision counts as finding the anomaly (spikes: at most 2 late)
WITHIN: dict[str, int] = {"spike": 3, "spike_after_idle": 3}
WITHIN_DEFAULT = 200


@dataclass
class Draw:
    """One generated pair: the clean series and the same series with the anomaly, its onset row and kind."""

    family: str
    kind: str
    seed: int
    ts_us: np.ndarray
    clean: np.ndarray
    injected: np.ndarray
    onset: int
    params: dict


def within(kind: str) -> int:
    """How many readings from the onset a decision may come and still count as finding this kind."""
    return WITHIN.get(kind, WITHIN_DEFAULT)


def _quantise(v: np.ndarray, res: float) -> np.ndarray:
    return np.round(v / res) * res


def _onoff_mask(n: int, p_start: float, min_len: int, max_len: int, rng: np.random.Generator) -> np.ndarray:
    on = np.zeros(n, bool)
    k = 0
    while k < n:
        if rng.random() < p_start:
            d = int(rng.integers(min_len, max_len + 1))
            on[k:k + d] = True
            k += d + 1  # a burst is followed by at least one idle reading
        else:
            k += 1
    return on


def onoff(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, dict]:
    """An on/off series (module docstring), clean and injected, and the onset row."""
    level = 10.0 ** rng.uniform(-1.0, 4.0)
    offset = 0.0 if rng.random() < 0.5 else level * 10.0 ** rng.uniform(-2.0, np.log10(2.0))
    noise = rng.uniform(0.005, 0.10)
    p_start = rng.uniform(0.01, 0.12)
    max_len = int(rng.integers(2, 51))
    res = level * float(rng.choice([0.1, 0.01, 0.001]))
    n = ROWS
    on = _onoff_mask(n, p_start, 2, max_len, rng)
    eps = rng.normal(size=n)
    amp = np.where(on, level * (1.0 + noise * eps), 0.0)
    idle_noise = np.where(on, 0.0, level * noise * eps) if offset > 0 else np.zeros(n)
    onset = ONSET
    if kind == "spike_after_idle":
        idle = int(rng.integers(65, 3001))
        burst = int(rng.integers(2, max(3, max_len) + 1))
        n = ONSET + idle + burst + 20
        on = np.r_[on[:ONSET], np.zeros(idle, bool), np.ones(burst, bool), np.zeros(20, bool)]
        eps = np.r_[eps[:ONSET], rng.normal(size=n - ONSET)]
        amp = np.where(on, level * (1.0 + noise * eps), 0.0)
        idle_noise = np.where(on, 0.0, level * noise * eps) if offset > 0 else np.zeros(n)
        onset = ONSET + idle
    clean = _quantise(offset + amp + idle_noise, res)
    if kind == "level_shift":
        amp2 = amp.copy()
        amp2[onset:] *= 2.0
        injected = _quantise(offset + amp2 + idle_noise, res)
        first_on = np.flatnonzero(on[onset:])
        onset = onset + int(first_on[0]) if len(first_on) else onset  # observable from the first burst on
    elif kind == "spike_after_idle":
        injected = clean.copy()
        injected[onset] = _quantise(offset + 10.0 * level, res)
    elif kind == "stuck":
        injected = clean.copy()
        active = np.flatnonzero(on[onset:])
        hold = clean[onset + int(active[0])] if len(active) else _quantise(offset + level, res)
        injected[onset:] = hold
    else:
        raise ValueError(f"onoff has no kind {kind!r}; use one of {KINDS['onoff']}")
    params = {"level": level, "offset": offset, "noise": noise, "p_start": p_start, "max_len": max_len, "res": res}
    return clean, injected, onset, params


def rate(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, dict]:
    """A rate with a daily period (module docstring), clean and injected, and the onset row."""
    period = int(rng.choice([96, 144, 288]))
    peak = 10.0 ** rng.uniform(np.log10(5.0), np.log10(5000.0))
    floor = rng.uniform(0.02, 0.3)
    poisson = bool(rng.random() < 0.5)
    noise = rng.uniform(0.02, 0.10)
    phase = rng.uniform(0, 2 * np.pi)
    n = ROWS
    u = rng.random(n)
    z = rng.normal(size=n)  # the same draws for the clean and the injected copy

    def series(pos: np.ndarray, mult: np.ndarray) -> np.ndarray:
        mean = peak * (floor + (1 - floor) * (0.5 - 0.5 * np.cos(pos)) ** 2) * mult
        if poisson:
            big = mean >= 30
            return np.where(big, np.maximum(np.round(mean + np.sqrt(mean) * z), 0.0),
                            _poisson_from_uniform(u, np.where(big, 0.0, mean)))
        return np.round(np.maximum(mean * (1 + noise * z), 0.0), 1 if peak < 1000 else 0)

    pos = 2 * np.pi * np.arange(n, dtype=np.float64) / period + phase
    mult = np.ones(n)
    clean = series(pos, mult)
    onset = ONSET
    params = {"period": period, "peak": peak, "floor": floor, "poisson": poisson, "noise": noise}
    if kind == "level_shift":
        f = rng.uniform(0.4, 0.6) if rng.random() < 0.5 else rng.uniform(1.6, 2.5)
        mult[onset:] = f
        return clean, series(pos, mult), onset, {**params, "factor": f}
    if kind == "period":
        pos2 = pos.copy()
        pos2[onset:] = pos[onset] + 2.0 * (pos[onset:] - pos[onset])
        return clean, series(pos2, mult), onset, params
    if kind == "spike":
        injected = clean.copy()
        injected[onset] = np.round(peak * rng.uniform(4.0, 8.0))
        return clean, injected, onset, params
    raise ValueError(f"rate has no kind {kind!r}; use one of {KINDS['rate']}")


def temperature(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, dict]:
    """A slowly trending temperature (module docstring), clean and injected, and the onset row."""
    n = ROWS
    i = np.arange(n, dtype=np.float64)
    sigma = 10.0 ** rng.uniform(np.log10(0.05), np.log10(0.5))
    phi = rng.uniform(0.5, 0.95)
    e = rng.normal(0, sigma * np.sqrt(1 - phi * phi), n)
    ar = np.zeros(n)
    for k in range(1, n):
        ar[k] = phi * ar[k - 1] + e[k]
    base = (rng.uniform(20, 90) + rng.uniform(-3, 3) * i / n
            + rng.uniform(0, 3) * np.sin(2 * np.pi * i / 1440 + rng.uniform(0, 2 * np.pi)))
    res = float(rng.choice([0.1, 0.01]))
    clean = _quantise(base + ar, res)
    onset = ONSET
    injected = clean.copy()
    if kind == "stuck":
        injected[onset:] = clean[onset]
    elif kind == "drift":
        length = int(rng.integers(100, 301))
        size = rng.choice([-1, 1]) * rng.uniform(8, 15) * sigma
        ramp = np.r_[np.linspace(0, 1, length), np.ones(n - onset - length)]
        injected[onset:] = _quantise(base[onset:] + ar[onset:] + size * ramp, res)
    elif kind == "spike":
        injected[onset] = _quantise(clean[onset] + rng.choice([-1, 1]) * rng.uniform(8, 12) * sigma, res)
    else:
        raise ValueError(f"temperature has no kind {kind!r}; use one of {KINDS['temperature']}")
    return clean, injected, onset, {"sigma": sigma, "phi": phi, "res": res}


def sparse(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, dict]:
    """A quantised mostly-zero count (module docstring), clean and injected, and the onset row."""
    n = ROWS
    lam = rng.uniform(0.02, 0.3)
    unit = float(rng.choice([1.0, 0.5, 0.2, 0.1]))
    u = rng.random(n)
    clean = _poisson_from_uniform(u, np.full(n, lam)) * unit
    onset = ONSET
    if kind != "level_shift":
        raise ValueError(f"sparse has no kind {kind!r}; use one of {KINDS['sparse']}")
    f = rng.uniform(5, 10)
    lam2 = np.full(n, lam)
    lam2[onset:] = lam * f
    injected = _poisson_from_uniform(u, lam2) * unit
    return clean, injected, onset, {"rate": lam, "unit": unit, "factor": f}


def _poisson_from_uniform(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Poisson counts by inversion of the same uniforms (so a higher rate gives counts at least as high)."""
    k = np.zeros(len(u))
    p = np.exp(-lam)
    cdf = p.copy()
    for j in range(1, 60):
        more = u > cdf
        if not more.any():
            break
        k += more
        p = p * lam / j
        cdf = cdf + p
    return k


def _clock_ts(n: int, missing: float, max_run: int, jitter_us: float | None, rng: np.random.Generator,
              step_us: int = STEP5_US) -> np.ndarray:
    """Timestamps of `n` readings on a grid of `step_us` (5 minutes) from `T0_US` with a share `missing` of the
    grid's slots skipped (exactly, to the slot: a drawn share, not a chance per slot, so a series of few long runs
    still misses what was drawn) in runs of 1..`max_run` slots placed after distinct readings, each reading jittered
    by up to +-`jitter_us` (< half a step, so they stay increasing); `jitter_us` None: exactly on the grid (a logger
    stamping its interval's end), and no jitter drawn from `rng`."""
    total = int(round(missing / (1.0 - missing) * n))
    runs: list[int] = []
    while sum(runs) < total:
        runs.append(int(rng.integers(1, max_run + 1)))
    if runs:
        runs[-1] -= sum(runs) - total  # >= 1: the run before it left the sum below `total`
    skip = np.zeros(n, np.int64)
    skip[rng.choice(np.arange(1, n), size=len(runs), replace=False)] = runs
    slot = np.cumsum(1 + skip) - 1
    ts = T0_US + slot.astype(np.int64) * step_us
    if jitter_us is None:
        return ts
    return ts + np.round(rng.uniform(-jitter_us, jitter_us, n)).astype(np.int64)


def _day_fraction(ts_us: np.ndarray, tz_hours: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(hour of the local day 0-24, day number since the epoch) of each timestamp, `tz_hours` east of UTC."""
    local_h = ts_us / 3.6e9 + tz_hours
    return np.mod(local_h, 24.0), np.floor(local_h / 24.0).astype(np.int64)


def server(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, dict, np.ndarray]:
    """A server or cloud metric (module docstring), clean and injected, the onset row and the timestamps."""
    n = ROWS
    metric = str(rng.choice(["cpu", "latency", "bytes"]))
    level = {"cpu": rng.uniform(5.0, 50.0), "latency": 10.0 ** rng.uniform(0.5, 3.0),
             "bytes": 10.0 ** rng.uniform(3.0, 9.0)}[metric]
    df = rng.uniform(2.0, 5.0)
    noise = rng.uniform(0.02, 0.10)
    daily = rng.uniform(0.05, 0.30) if rng.random() < 0.5 else 0.0
    phase = rng.uniform(0, 2 * np.pi)
    p_burst = rng.uniform(0.002, 0.01)
    missing = rng.uniform(0.01, 0.08) if rng.random() < 0.5 else 0.0
    ts = _clock_ts(n, missing, 6, rng.uniform(0, 10e6), rng)
    t = np.clip(rng.standard_t(df, n), -15.0, 15.0)  # the same draws for the clean and the injected copy
    burst = np.ones(n)
    for k in np.flatnonzero(rng.random(n) < p_burst):
        burst[k:k + int(rng.integers(1, 7))] = rng.uniform(1.5, 3.0)
    hour, _ = _day_fraction(ts)
    base = level * (1.0 + daily * np.cos(2 * np.pi * hour / 24.0 + phase))
    scale = level * noise
    res = 10.0 ** np.floor(np.log10(scale / 2))
    res = max(res, 0.01) if metric == "cpu" else max(res, 1.0) if metric == "bytes" else res

    def series(shift: np.ndarray, noise_x: np.ndarray) -> np.ndarray:
        if metric == "cpu":
            v = np.clip((base + shift) * burst + scale * noise_x * t, 0.0, 100.0)
        else:
            v = (base + shift) * burst * np.exp(noise * noise_x * t)
        return _quantise(v, res)

    zero, one = np.zeros(n), np.ones(n)
    clean = series(zero, one)
    onset = ONSET
    params = {"metric": metric, "level": level, "df": df, "noise": noise, "daily": daily, "p_burst": p_burst,
              "missing": missing, "res": res}
    if kind == "level_shift":
        k = float(rng.choice([-1, 1]) * rng.uniform(3.0, 6.0))
        shift = zero.copy()
        shift[onset:] = k * scale
        return clean, series(shift, one), onset, {**params, "scales": k}, ts
    if kind == "spike":
        injected = clean.copy()
        far = float(np.max(np.abs(clean[:onset] - level)))
        f = rng.uniform(1.2, 2.0)
        top = _quantise(np.array([min(level + f * far, 100.0) if metric == "cpu" else level + f * far]), res)[0]
        # the first reading from ONSET on outside a normal burst and below the spike (a CPU at 100 cannot spike)
        onset = ONSET + int(np.flatnonzero((burst[ONSET:] == 1.0) & (clean[ONSET:] < top))[0])
        injected[onset] = top
        return clean, injected, onset, {**params, "factor": f}, ts
    if kind == "noise":
        f = rng.uniform(2.0, 3.5)
        nx = one.copy()
        nx[onset:] = f
        return clean, series(zero, nx), onset, {**params, "factor": f}, ts
    if kind == "stuck":
        injected = clean.copy()
        injected[onset:] = clean[onset]
        return clean, injected, onset, params, ts
    raise ValueError(f"server has no kind {kind!r}; use one of {EXTRA_KINDS['server']}")


def _demand(hour: np.ndarray, day: np.ndarray, morning: float, evening: float, weekend_x: float,
            day_x: np.ndarray) -> np.ndarray:
    """A road's demand at each local hour (0-1 on an average weekday's morning peak): two rush hours over a
    midday plateau on weekdays, one broad hump at the weekend, each day scaled by its own factor."""
    weekday = np.mod(day + 3, 7) < 5  # 1970-01-01 was a Thursday: (day + 3) % 7 is 0 on Mondays
    night = 0.04
    rush = (np.exp(-0.5 * ((hour - morning) / 1.0) ** 2)
            + 0.95 * np.exp(-0.5 * ((hour - evening) / 1.3) ** 2)
            + 0.45 * np.exp(-0.5 * ((hour - 12.5) / 3.0) ** 2))
    hump = weekend_x * np.exp(-0.5 * ((hour - 13.5) / 3.0) ** 2)
    d = night + (1 - night) * np.where(weekday, np.minimum(rush, 1.05), hump)
    return d * day_x[day - day[0]]


def traffic(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, dict, np.ndarray]:
    """A road sensor's speed or occupancy (module docstring), clean and injected, the onset row and timestamps."""
    n = ROWS
    sensor = str(rng.choice(["speed", "occupancy"]))
    tz = float(rng.integers(-8, 3))
    missing = rng.uniform(0.03, 0.15)
    ts = _clock_ts(n, missing, int(rng.integers(2, 31)), rng.uniform(0, 60e6), rng)
    hour, day = _day_fraction(ts, tz)
    day_x = rng.uniform(0.85, 1.15, int(day[-1] - day[0]) + 1)
    d = _demand(hour, day, rng.uniform(7.0, 8.5), rng.uniform(16.5, 18.0), rng.uniform(0.5, 0.67), day_x)
    z = rng.normal(size=n)  # the same draws for the clean and the injected copy
    res = float(rng.choice([1.0, 0.1]))
    onset = ONSET
    if sensor == "occupancy":
        peak = rng.uniform(8.0, 40.0)
        rel = rng.uniform(0.08, 0.20)

        def occ(x: np.ndarray) -> np.ndarray:
            mean = peak * d * x
            return _quantise(np.clip(mean + (rel * mean + 0.3) * z, 0.0, 100.0), res)

        params = {"sensor": sensor, "tz": tz, "missing": missing, "peak": peak, "noise": rel, "res": res}
        clean = occ(np.ones(n))
        if kind == "level_shift":
            x = np.ones(n)
            x[onset:] = f = rng.uniform(1.5, 2.5)
            return clean, occ(x), onset, {**params, "factor": f}, ts
        if kind == "spike":
            injected = clean.copy()
            f = rng.uniform(1.5, 3.0)
            injected[onset] = _quantise(np.array([min(f * float(clean[:onset].max()), 100.0)]), res)[0]
            return clean, injected, onset, {**params, "factor": f}, ts
    else:
        limit = rng.uniform(50.0, 110.0)
        free = limit * rng.uniform(0.95, 1.05)
        depth = rng.uniform(0.2, 0.7)
        rel = rng.uniform(0.02, 0.06)
        cap = limit * rng.uniform(1.05, 1.15)
        jam = np.clip((d - 0.4) / 0.6, 0.0, 1.0)  # demand past 40 % of the peak slows the road

        def speed(x: np.ndarray) -> np.ndarray:
            mean = free * x * (1.0 - depth * jam)
            return _quantise(np.clip(mean + free * rel * (1.0 + (d < 0.2)) * z, 0.0, cap), res)

        params = {"sensor": sensor, "tz": tz, "missing": missing, "limit": limit, "depth": depth, "noise": rel,
                  "res": res}
        clean = speed(np.ones(n))
        if kind == "level_shift":
            x = np.ones(n)
            x[onset:] = f = rng.uniform(0.6, 0.8)
            return clean, speed(x), onset, {**params, "factor": f}, ts
        if kind == "spike":
            injected = clean.copy()
            f = rng.uniform(1.4, 2.0) if rng.random() < 0.5 else rng.uniform(0.0, 0.2) * free / limit
            injected[onset] = _quantise(np.array([f * limit]), res)[0]
            return clean, injected, onset, {**params, "factor": f}, ts
    if kind == "failure":
        injected = clean.copy()
        to_zero = bool(rng.random() < 0.5)
        injected[onset:] = 0.0 if to_zero else clean[onset]
        return clean, injected, onset, {**params, "to_zero": to_zero}, ts
    raise ValueError(f"traffic has no kind {kind!r}; use one of {EXTRA_KINDS['traffic']}")


PERIODIC_SHAPES = ("sine", "pulse", "square")


def _periodic_wave(shape: str, pos: np.ndarray, sharp: float) -> np.ndarray:
    """A periodic shape in 0..1 at phase `pos` (radians): a sine, a raised-cosine pulse (a narrow peak for a large
    `sharp`) or a rounded square wave (steep edges for a large `sharp`)."""
    c = 0.5 - 0.5 * np.cos(pos)
    if shape == "pulse":
        return c ** sharp
    if shape == "square":
        return 0.5 + 0.5 * np.tanh(sharp * np.sin(pos)) / np.tanh(sharp)
    return c


def periodic(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, dict, np.ndarray]:
    """period42's development family (not a held-out shape, written from issue 11's "changed periodicity" only): a
    series that repeats a shape every 12-400 readings (log-uniform), not tied to the clock day: a sine, a pulse or a
    rounded square wave of an amplitude of 1-100 % of its level (1-10,000), Gaussian noise of 2-25 % of the amplitude,
    a trend of up to one amplitude over the series, quantised to a power of ten at most a twentieth of the amplitude,
    on a 5-minute grid that misses 0 or 1-5 % of its slots (runs of 1-4) with a jitter of up to 10 s; the phase
    follows the grid's slots (a missed reading skips its phase). Kind `period`: from the onset on the period is x
    0.4-0.7 or x 1.4-2.5 (phase continuous: no step at the onset). Why: a shape family wide in period, shape, noise
    and sampling, so a stage that finds a changed period is tuned on no one period (rate's clock day)."""
    n = ROWS
    period = float(np.exp(rng.uniform(np.log(12.0), np.log(400.0))))
    shape = PERIODIC_SHAPES[int(rng.integers(len(PERIODIC_SHAPES)))]
    sharp = float(rng.uniform(2.0, 6.0))
    level = 10.0 ** rng.uniform(0.0, 4.0)
    amp = level * rng.uniform(0.01, 1.0)
    noise = amp * rng.uniform(0.02, 0.25)
    trend = amp * rng.uniform(-1.0, 1.0)
    res = 10.0 ** np.floor(np.log10(amp / 20.0))
    missing = rng.uniform(0.01, 0.05) if rng.random() < 0.5 else 0.0
    ts = _clock_ts(n, missing, 4, rng.uniform(0, 10e6), rng)
    slot = np.round((ts - T0_US) / STEP5_US)
    phase = rng.uniform(0, 2 * np.pi)
    z = rng.normal(size=n)
    factor = rng.uniform(0.4, 0.7) if rng.random() < 0.5 else rng.uniform(1.4, 2.5)

    def series(pos: np.ndarray) -> np.ndarray:
        return _quantise(level + amp * _periodic_wave(shape, pos, sharp) + trend * slot / slot[-1] + noise * z, res)

    pos = 2 * np.pi * slot / period + phase
    clean = series(pos)
    onset = ONSET
    params = {"period": period, "shape": shape, "sharp": sharp, "level": level, "amp": amp, "noise": noise,
              "trend": trend, "res": res, "missing": missing, "factor": factor}
    if kind != "period":
        raise ValueError(f"periodic has no kind {kind!r}; use one of {EXTRA_KINDS['periodic']}")
    pos2 = pos.copy()
    pos2[onset:] = pos[onset] + (pos[onset:] - pos[onset]) / factor
    return clean, series(pos2), onset, params, ts


GENERATORS = {"onoff": onoff, "rate": rate, "temperature": temperature, "sparse": sparse}
#: families whose generator also draws the timestamps (irregular, on the clock): (clean, injected, onset, params, ts)
CLOCKED = {"server": server, "traffic": traffic, "periodic": periodic}


def clocked_draw(label: str, kinds: dict[str, list[str]], generators: dict, family_offset: int, family: str,
                 kind: str, seed: int) -> Draw:
    """One seeded pair from a set of families whose generators return their own timestamps (the held-out-style
    sets, `families_blind` and `families_blind2`): the seed stream is (seed, `family_offset` + the family's index,
    the kind's index), so each set's draws stay apart from every other set's. `label` names the set in errors."""
    if family not in kinds:
        raise ValueError(f"unknown {label} family {family!r}; use one of {sorted(kinds)}")
    if kind not in kinds[family]:
        raise ValueError(f"{family} has no kind {kind!r}; use one of {kinds[family]}")
    rng = np.random.default_rng([seed, family_offset + list(kinds).index(family), kinds[family].index(kind)])
    clean, injected, onset, params, ts = generators[family](kind, rng)
    return Draw(family, kind, seed, ts, clean.astype(np.float64), injected.astype(np.float64), onset, params)


def draw(family: str, kind: str, seed: int) -> Draw:
    """One seeded pair of the family and kind (deterministic for the three)."""
    if family not in ALL_KINDS:
        raise ValueError(f"unknown family {family!r}; use one of {sorted(ALL_KINDS)}")
    if kind not in ALL_KINDS[family]:
        raise ValueError(f"{family} has no kind {kind!r}; use one of {ALL_KINDS[family]}")
    rng = np.random.default_rng([seed, list(ALL_KINDS).index(family), ALL_KINDS[family].index(kind)])
    if family in CLOCKED:
        clean, injected, onset, params, ts = CLOCKED[family](kind, rng)
    else:
        clean, injected, onset, params = GENERATORS[family](kind, rng)
        step = DAY_US // int(params["period"]) if family == "rate" else STEP_US  # a rate's day is a clock day
        ts = T0_US + np.arange(len(clean), dtype=np.int64) * step
    return Draw(family, kind, seed, ts, clean.astype(np.float64), injected.astype(np.float64), onset, params)
