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


GENERATORS = {"onoff": onoff, "rate": rate, "temperature": temperature, "sparse": sparse}


def draw(family: str, kind: str, seed: int) -> Draw:
    """One seeded pair of the family and kind (deterministic for the three)."""
    if family not in GENERATORS:
        raise ValueError(f"unknown family {family!r}; use one of {sorted(GENERATORS)}")
    rng = np.random.default_rng([seed, list(GENERATORS).index(family), KINDS[family].index(kind)])
    clean, injected, onset, params = GENERATORS[family](kind, rng)
    step = DAY_US // int(params["period"]) if family == "rate" else STEP_US  # a rate's day is a clock day
    ts = T0_US + np.arange(len(clean), dtype=np.int64) * step
    return Draw(family, kind, seed, ts, clean.astype(np.float64), injected.astype(np.float64), onset, params)
