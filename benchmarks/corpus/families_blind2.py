"""A second held-out-style set (blind41): three families nobody has tuned on, an honest estimate, not a target.

Why: blind40's four families (`families_blind.py`) stop being blind as sessions develop on them (session 41 works
on `machine`). These three kinds of series are drawn from public descriptions of such data (none from NAB or
Yahoo S5 files or labels), with the shapes fixed before the detector code was read (blind41.README.md gives the
sources). **Do not tune detectors on them**: once a change is chosen by its figure here, this stops being a blind
estimate; write new families instead. `detection_families.py --families energy,water,synth` runs them (they are
in no default sweep).

Every series has `families.ROWS` readings and its anomaly at row `families.ONSET` (NAB's 15 % probation and its
one window of 300 readings centred on the onset fall as in `families.py`).

- `energy`: a commercial building's electricity meter, kWh per 15 minutes on the quarter hour (60 % of meters
  miss nothing, the others 0.2-2 % of the slots in runs of 1-4: a head-end that did not collect). A baseload of
  5-200 kW; occupied hours from 5.5-9 h to 16.5-20.5 h local (a time zone of UTC-8 to +9), reached through a
  logistic ramp of 15 min - 1 h (HVAC and lighting start-up), where the load rises to 1.5-4x the baseload; an
  afternoon cooling bump of 0-30 %; weekends at 0-40 % of a weekday's occupied load; a day-to-day factor (weather)
  of AR(1) log-sd 0.03-0.12; equipment cycling (a chiller or refrigeration stage switching on 30-70 % of the
  time, 0-10 % of the baseload); relative noise 1-5 %; resolution 0.001, 0.01 or 0.1 kWh. Kinds: `baseload` (from
  the onset equipment left running day and night: + 20-80 % of the baseload), `schedule` (from the onset the
  building runs 1.5-4 h earlier and 1.5-4 h later, and with even chance on weekends as on weekdays: a BMS
  schedule lost or overridden), `stuck` (from the onset the meter reports 0, a frozen register, or with even
  chance repeats its onset reading).
- `water`: a district metered area's inlet, 15-minute means of flow (L/s) or of pressure at the critical point
  (m), with even chance; 0 or 0.5-3 % of slots missed in runs of 1-8 (a logger's telemetry). Consumer demand with
  a residential day: a night minimum at 2-4 h, a morning peak at 6.5-8.5 h (weekends 1-2 h later), an evening peak
  at 18-21 h; a mean inflow of 3-150 L/s and a minimum night flow of 20-50 % of it, of which the part consumers
  do not explain is background leakage (constant); a day-to-day factor (AR(1) log-sd 0.02-0.08); relative
  noise 2-6 % of consumption plus meter noise 0.5-2 % of the mean; flow resolution 0.01 or 0.1 L/s. Pressure:
  a PRV outlet of 30-70 m less a head loss of 3-15 m at the day's peak flow, scaling with flow^1.85 (Hazen-
  Williams); noise 0.05-0.3 m; resolution 0.01 or 0.1 m. Kinds: `burst` (from the onset + 10-50 % of the mean
  inflow until repaired 1-3 days later; the pressure drops by the head loss of the extra flow and 0.5-3 m
  locally), `leak` (a new unreported leak growing from 0 to 20-60 % of the minimum night flow over 1-4 days, then
  held: night flow rises; pressure as for a burst, 0.3-1.5 m locally at full size), `freeze` (from the onset the
  logger repeats its onset reading).
- `synth`: a GutenTAG-like univariate series, one reading a minute: a base oscillation (with a third each: a sine,
  an ECG-like pulse train, or a sine on a random-walk baseline) of period 20-200 readings (ECG 40-200), amplitude
  0.1-30, offset -50..50, Gaussian noise 1-10 % of the amplitude. An anomaly of 50-150 readings from the onset,
  one kind each: `amplitude` (x 0.2-0.5 or x 2-4), `frequency` (x 1.8-3 or x 0.3-0.55 the phase speed, the
  phase continuous), `pattern` (sine: squared off, tanh(k sin) with k 3-10; ECG: R wave x 0.2-0.5 and T wave
  inverted), `trend` (a ramp of 1-4 amplitudes, up or down, over the anomaly, then held), `variance` (the noise
  sd x 3-8, at least 10-30 % of the amplitude), `platform` (the value held at the offset + -1..1 amplitudes).
"""

from __future__ import annotations

import numpy as np

from corpus.families import ONSET, ROWS, STEP_US, T0_US, Draw, _clock_ts, clocked_draw, _day_fraction, _quantise

KINDS: dict[str, tuple[str, ...]] = {
    "energy": ("baseload", "schedule", "stuck"),
    "water": ("burst", "leak", "freeze"),
    "synth": ("amplitude", "frequency", "pattern", "trend", "variance", "platform"),
}
STEP15_US = 900_000_000
#: offset of these families' index in the seed stream: apart from `families.py` (0-5) and blind40's (100-103)
SEED_FAMILY_OFFSET = 200
READINGS_PER_DAY15 = 96


def _logistic(x: np.ndarray) -> np.ndarray:
    """A smooth 0-1 step (numerically safe for large |x|)."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _daily_ar(day: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    """A multiplicative factor per local day (weather, demand), AR(1) with coefficient 0.7 on the log scale."""
    days = day - day.min()
    logs = np.empty(int(days.max()) + 1)
    v = 0.0
    for k in range(len(logs)):
        v = 0.7 * v + sd * np.sqrt(1 - 0.49) * rng.normal()
        logs[k] = v
    return np.exp(logs[days])


def _occupancy(hour: np.ndarray, weekend: np.ndarray, start: float, end: float, ramp: float,
               weekend_x: float) -> np.ndarray:
    """A building's occupied share 0-1: logistic ramps at `start` and `end` hours, weekends at `weekend_x`."""
    occ = _logistic((hour - start) / ramp) * _logistic((end - hour) / ramp)
    return np.where(weekend, weekend_x * occ, occ)


def _cycling(n: int, duty: float, rng: np.random.Generator) -> np.ndarray:
    """A stage switching on and off (a two-state Markov chain, on `duty` of the time, switching ~every 3-10)."""
    p_off = rng.uniform(0.1, 0.35)
    p_on = p_off * duty / (1 - duty)
    u = rng.random(n)
    out = np.empty(n)
    s = rng.random() < duty
    for k in range(n):
        s = (u[k] >= p_off) if s else (u[k] < p_on)
        out[k] = float(s)
    return out


def energy(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, dict, np.ndarray]:
    """A commercial building's kWh per 15 minutes (module docstring): clean, injected, onset, params, timestamps."""
    n = ROWS
    missing = 0.0 if rng.random() < 0.6 else rng.uniform(0.002, 0.02)
    ts = _clock_ts(n, missing, 4, None, rng, step_us=STEP15_US)
    tz = float(rng.integers(-8, 10))
    hour, day = _day_fraction(ts, tz)
    weekend = np.mod(day + 3, 7) >= 5
    base_kw = 10.0 ** rng.uniform(np.log10(5), np.log10(200))
    ratio = rng.uniform(1.5, 4.0)
    start, end, ramp = rng.uniform(5.5, 9.0), rng.uniform(16.5, 20.5), rng.uniform(0.25, 1.0)
    weekend_x = rng.uniform(0.0, 0.4)
    afternoon = 1.0 + rng.uniform(0.0, 0.3) * np.cos(2 * np.pi * (hour - 15.0) / 24.0)
    weather = _daily_ar(day, rng.uniform(0.03, 0.12), rng)
    cyc = rng.uniform(0.0, 0.1) * base_kw * _cycling(n, rng.uniform(0.3, 0.7), rng)
    rel = rng.uniform(0.01, 0.05)
    res = float(rng.choice([0.001, 0.01, 0.1]))
    z = rng.normal(size=n)

    def kwh(occ: np.ndarray, extra_kw: float | np.ndarray = 0.0) -> np.ndarray:
        kw = base_kw * (1.0 + (ratio - 1.0) * occ * afternoon * weather) + cyc + extra_kw
        return np.maximum(_quantise(kw / 4.0 * (1.0 + rel * z), res), 0.0)

    clean = kwh(_occupancy(hour, weekend, start, end, ramp, weekend_x))
    onset = ONSET
    after = np.arange(n) >= onset
    params = {"missing": missing, "tz": tz, "base_kw": base_kw, "ratio": ratio, "start": start, "end": end,
              "weekend_x": weekend_x, "rel": rel, "res": res}
    if kind == "baseload":
        f = rng.uniform(0.2, 0.8)
        return clean, kwh(_occupancy(hour, weekend, start, end, ramp, weekend_x), after * f * base_kw), onset, \
            {**params, "factor": f}, ts
    if kind == "schedule":
        early, late = rng.uniform(1.5, 4.0), rng.uniform(1.5, 4.0)
        weekends_too = bool(rng.random() < 0.5)
        moved = _occupancy(hour, weekend & ~weekends_too, start - early, end + late, ramp, weekend_x)
        occ = np.where(after, moved, _occupancy(hour, weekend, start, end, ramp, weekend_x))
        return clean, kwh(occ), onset, {**params, "early": early, "late": late, "weekends": weekends_too}, ts
    if kind == "stuck":
        zero = bool(rng.random() < 0.5)
        injected = clean.copy()
        injected[onset:] = 0.0 if zero else clean[onset]
        return clean, injected, onset, {**params, "zero": zero}, ts
    raise ValueError(f"energy has no kind {kind!r}; use one of {KINDS['energy']}")


def _bump(hour: np.ndarray, centre: np.ndarray | float, width: float) -> np.ndarray:
    """A Gaussian bump on the 24-hour circle."""
    d = np.mod(hour - centre + 12.0, 24.0) - 12.0
    return np.exp(-0.5 * (d / width) ** 2)


def _consumer_shape(hour: np.ndarray, weekend: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Residential demand through the day (a night minimum, morning and evening peaks), weekday mean 1, and the
    weekday minimum of that shape (what consumers draw at night)."""
    morning, evening = rng.uniform(6.5, 8.5), rng.uniform(18.0, 21.0)
    late = rng.uniform(1.0, 2.0)
    m_h, e_h, plateau = rng.uniform(0.6, 1.5), rng.uniform(0.4, 1.0), rng.uniform(0.3, 0.6)
    night = rng.uniform(0.03, 0.1)

    def shape(h: np.ndarray, wk: np.ndarray) -> np.ndarray:
        mc = np.where(wk, morning + late, morning)
        day_on = _logistic((h - 5.5) / 0.5) * _logistic((23.0 - h) / 0.7)
        return night + plateau * day_on + m_h * _bump(h, mc, 1.2) + e_h * _bump(h, evening, 1.5)

    grid = np.arange(96) / 4.0
    ref = shape(grid, np.zeros(96, bool))
    return shape(hour, weekend) / ref.mean(), float(ref.min() / ref.mean())


def water(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, dict, np.ndarray]:
    """A district metered area's inlet flow or critical-point pressure per 15 minutes (module docstring)."""
    n = ROWS
    metric = str(rng.choice(["flow", "pressure"]))
    missing = 0.0 if rng.random() < 0.5 else rng.uniform(0.005, 0.03)
    ts = _clock_ts(n, missing, 8, None, rng, step_us=STEP15_US)
    tz = float(rng.integers(-8, 10))
    hour, day = _day_fraction(ts, tz)
    weekend = np.mod(day + 3, 7) >= 5
    mean_q = 10.0 ** rng.uniform(np.log10(3), np.log10(150))
    mnf_ratio = rng.uniform(0.2, 0.5)
    c, c_min = _consumer_shape(hour, weekend, rng)
    scale = mean_q * (1.0 - mnf_ratio) / (1.0 - c_min)  # consumers' flow at a shape of 1
    leakage = mean_q * mnf_ratio - scale * c_min  # > 0 for these ranges: the night flow consumers do not explain
    consumers = scale * c * _daily_ar(day, rng.uniform(0.02, 0.08), rng)
    z = rng.normal(size=n)
    consumers = np.maximum(consumers * (1.0 + rng.uniform(0.02, 0.06) * z), 0.0)
    meter = rng.uniform(0.005, 0.02) * mean_q * rng.normal(size=n)
    q_clean = leakage + consumers
    q_peak = float(q_clean.max())
    p0, hl = rng.uniform(30, 70), rng.uniform(3, 15)
    p_sd = rng.uniform(0.05, 0.3)
    pz = rng.normal(size=n)
    res = float(rng.choice([0.01, 0.1]))

    def series(extra_q: np.ndarray, local_m: np.ndarray) -> np.ndarray:
        q = q_clean + extra_q
        if metric == "flow":
            return np.maximum(_quantise(q + meter, res), 0.0)
        return _quantise(p0 - hl * (q / q_peak) ** 1.85 - local_m + p_sd * pz, res)

    zero = np.zeros(n)
    clean = series(zero, zero)
    onset = ONSET
    params = {"metric": metric, "missing": missing, "tz": tz, "mean_q": mean_q, "mnf_ratio": mnf_ratio,
              "leakage": leakage, "p0": p0, "hl": hl, "res": res}
    if kind == "burst":
        size, repair = rng.uniform(0.1, 0.5) * mean_q, int(rng.integers(96, 289))
        on = np.zeros(n)
        on[onset:onset + repair] = 1.0
        drop = rng.uniform(0.5, 3.0)
        return clean, series(size * on, drop * on), onset, {**params, "size": size, "repair": repair}, ts
    if kind == "leak":
        size, grow = rng.uniform(0.2, 0.6) * mnf_ratio * mean_q, int(rng.integers(96, 385))
        ramp = np.clip((np.arange(n) - onset + 1) / grow, 0.0, 1.0)
        drop = rng.uniform(0.3, 1.5)
        return clean, series(size * ramp, drop * ramp), onset, {**params, "size": size, "grow": grow}, ts
    if kind == "freeze":
        injected = clean.copy()
        injected[onset:] = clean[onset]
        return clean, injected, onset, params, ts
    raise ValueError(f"water has no kind {kind!r}; use one of {KINDS['water']}")


def _ecg(frac: np.ndarray, r_x: float = 1.0, t_x: float = 1.0) -> np.ndarray:
    """An ECG-like beat over one cycle (`frac` 0-1): P, Q, R, S and T waves as Gaussians."""
    def g(c: float, w: float) -> np.ndarray:
        return np.exp(-0.5 * ((frac - c) / w) ** 2)
    return 0.15 * g(0.2, 0.03) - 0.1 * g(0.37, 0.01) + r_x * g(0.4, 0.012) - 0.25 * g(0.43, 0.01) \
        + t_x * 0.3 * g(0.65, 0.05)


def synth(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, dict, np.ndarray]:
    """A GutenTAG-like univariate series with one anomaly of 50-150 readings (module docstring)."""
    n = ROWS
    ts = T0_US + np.arange(n, dtype=np.int64) * STEP_US
    base = str(rng.choice(["sine", "ecg", "rw_sine"]))
    period = rng.uniform(40, 200) if base == "ecg" else rng.uniform(20, 200)
    amp = 10.0 ** rng.uniform(-1, np.log10(30))
    offset = rng.uniform(-50, 50)
    sd = amp * rng.uniform(0.01, 0.1)
    phase0 = rng.uniform(0, 1)
    z = rng.normal(size=n)
    walk = np.cumsum(amp * rng.uniform(0.005, 0.03) * rng.normal(size=n)) if base == "rw_sine" else np.zeros(n)
    onset = ONSET
    length = int(rng.integers(50, 151))
    inside = np.zeros(n, bool)
    inside[onset:onset + length] = True
    one = np.ones(n)

    def osc(speed: np.ndarray, amp_x: np.ndarray, pattern: np.ndarray | None) -> np.ndarray:
        cyc = phase0 + np.cumsum(speed) / period  # cycles: continuous through a change of speed
        if base == "ecg":
            v = _ecg(np.mod(cyc, 1.0))
            if pattern is not None:
                v = np.where(pattern > 0, _ecg(np.mod(cyc, 1.0), pattern, -1.0), v)
        else:
            v = np.sin(2 * np.pi * cyc)
            if pattern is not None:
                k = np.where(pattern > 0, pattern, 1.0)
                v = np.where(pattern > 0, np.tanh(k * v) / np.tanh(k), v)
        return offset + walk + amp * amp_x * v

    clean = osc(one, one, None) + sd * z
    params = {"base": base, "period": period, "amp": amp, "offset": offset, "sd": sd, "length": length}
    if kind == "amplitude":
        f = rng.uniform(0.2, 0.5) if rng.random() < 0.5 else rng.uniform(2.0, 4.0)
        return clean, osc(one, np.where(inside, f, 1.0), None) + sd * z, onset, {**params, "factor": f}, ts
    if kind == "frequency":
        f = rng.uniform(1.8, 3.0) if rng.random() < 0.5 else rng.uniform(0.3, 0.55)
        return clean, osc(np.where(inside, f, 1.0), one, None) + sd * z, onset, {**params, "factor": f}, ts
    if kind == "pattern":
        k = rng.uniform(0.2, 0.5) if base == "ecg" else rng.uniform(3.0, 10.0)
        return clean, osc(one, one, np.where(inside, k, 0.0)) + sd * z, onset, {**params, "k": k}, ts
    if kind == "trend":
        size = float(rng.choice([-1, 1]) * rng.uniform(1.0, 4.0) * amp)
        ramp = np.clip((np.arange(n) - onset + 1) / length, 0.0, 1.0)
        return clean, clean + size * ramp, onset, {**params, "size": size}, ts
    if kind == "variance":
        new_sd = max(sd * rng.uniform(3.0, 8.0), amp * rng.uniform(0.1, 0.3))
        return clean, osc(one, one, None) + np.where(inside, new_sd, sd) * z, onset, {**params, "new_sd": new_sd}, ts
    if kind == "platform":
        value = offset + float(walk[onset]) + rng.uniform(-1.0, 1.0) * amp
        return clean, np.where(inside, value, clean), onset, {**params, "value": value}, ts
    raise ValueError(f"synth has no kind {kind!r}; use one of {KINDS['synth']}")


GENERATORS = {"energy": energy, "water": water, "synth": synth}


def draw(family: str, kind: str, seed: int) -> Draw:
    """One seeded pair of the family and kind (deterministic; streams apart from the other families')."""
    return clocked_draw("blind2", KINDS, GENERATORS, SEED_FAMILY_OFFSET, family, kind, seed)
