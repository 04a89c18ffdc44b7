"""A wide family of clean on/off (bursty) series, seeded, for the detectors' false alerts and recall on them.

Why: det19's bursty generator (tests/test_detectors_adaptive.py `_bursty`) is one shape (0 / ~60, 5 % noise,
bursts of 3-14 readings, 0.1 resolution); det21 and det23 measured a wider family with throw-away scripts that
were lost. This module rebuilds it from their description (benchmarks/README.md, det21 / det23 / det24) so that
the sweep (`benchmarks/detection_onoff_sweep.py`) and the property tests (tests/test_detect_onoff_family.py) draw
the same members: an active level of 0.1-10,000 (log-uniform), the idle level 0 or an offset of 1-200 % of the
active level (the active readings sit at offset + level), noise 0.5-10 % of the level on active readings (idle
readings are exact), a burst starting with probability 1-12 % a reading, bursts of 2 to 2-50 readings, a
resolution of 10 / 1 / 0.1 % of the level; then an idle stretch of 65-3,000 readings and one more burst (the
return from a long idle, det23), and 20 idle readings.

Anomalies (`inject`): the bursty kinds of corpus/synthetic.py at the member's own scale: a spike (ten times the
level, as the first reading of the burst after the long idle stretch, or in the body of the series), a stuck
value (the active level frozen for 60-200 readings) and a dropout (30-60 readings missing; found at the first
reading after it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BODY = 3000
STEP_US = 60_000_000
T0_US = 1_700_000_000_000_000
PROBATION = 300
TAIL = 20
RESOLUTIONS = (0.1, 0.01, 0.001)  # of the level


@dataclass(frozen=True)
class OnOffMember:
    """One clean member: its values, timestamps (one a minute), and where its parts are (rows)."""

    seed: int
    level: float
    idle: float
    noise: float
    p_start: float
    burst_max: int
    res: float
    values: np.ndarray
    ts_us: np.ndarray
    last_burst: int  # first row of the burst after the long idle stretch
    idle_len: int  # readings of that idle stretch


def _round(v: np.ndarray, res: float) -> np.ndarray:
    return np.round(np.round(v / res) * res, 12)


def member(seed: int, *, idle_len: int | None = None, burst_max_at_least: int = 2,
           resolutions: tuple[float, ...] = RESOLUTIONS) -> OnOffMember:
    """The family's member for a seed (deterministic); a sub-family by overriding what is drawn (the same draws
    are made, so the rest of the member stays the same): the long idle stretch's length, a lower bound on the
    longest burst, the resolutions (of the level) to draw from."""
    rng = np.random.default_rng(seed)
    level = float(10.0 ** rng.uniform(-1.0, 4.0))
    idle = 0.0 if rng.random() < 0.5 else float(level * 10.0 ** rng.uniform(-2.0, np.log10(2.0)))
    noise = float(rng.uniform(0.005, 0.10))
    p_start = float(rng.uniform(0.01, 0.12))
    burst_max = max(int(rng.integers(2, 51)), burst_max_at_least)
    res = float(level * resolutions[int(rng.integers(0, 3)) % len(resolutions)])
    drawn_idle = int(rng.integers(65, 3001))
    idle_len = drawn_idle if idle_len is None else idle_len
    last_len = int(rng.integers(2, burst_max + 1))
    on = np.zeros(N_BODY, bool)
    k = 0
    while k < N_BODY:
        if rng.random() < p_start:
            d = int(rng.integers(2, burst_max + 1))
            on[k:k + d] = True
            k += d
        k += 1
    on = np.r_[on, np.zeros(idle_len, bool), np.ones(last_len, bool), np.zeros(TAIL, bool)]
    n = len(on)
    active = idle + level * (1.0 + noise * rng.normal(size=n))
    v = _round(np.where(on, active, idle), res)
    ts = T0_US + np.arange(n, dtype=np.int64) * STEP_US
    return OnOffMember(seed, level, idle, noise, p_start, burst_max, res, v, ts, N_BODY + idle_len, idle_len)


@dataclass(frozen=True)
class Injected:
    """A member with one anomaly: values, timestamps (a dropout removes rows), the row where it must be found
    and its kind."""

    values: np.ndarray
    ts_us: np.ndarray
    onset: int
    kind: str


def inject(m: OnOffMember, kind: str, rng: np.random.Generator) -> Injected:
    """One anomaly of `kind` ("spike_after_idle", "spike", "stuck", "dropout") in a copy of the member, at its
    own scale; the onset is a row of the returned arrays."""
    v = m.values.copy()
    ts = m.ts_us.copy()
    if kind == "spike_after_idle":
        v[m.last_burst] = _round(np.array([m.idle + 10.0 * m.level]), m.res)[0]
        return Injected(v, ts, m.last_burst, kind)
    i = int(rng.integers(1500, N_BODY - 300))
    if kind == "spike":
        v[i] = _round(np.array([max(v[i], m.idle) + 10.0 * m.level]), m.res)[0]
        return Injected(v, ts, i, kind)
    if kind == "stuck":
        end = i + int(rng.integers(60, 200))
        v[i:end] = _round(np.array([m.idle + m.level * rng.uniform(0.5, 1.0)]), m.res)[0]
        return Injected(v, ts, i, kind)
    if kind == "dropout":
        d = int(rng.integers(30, 60))
        keep = np.ones(len(v), bool)
        keep[i:i + d] = False
        return Injected(v[keep], ts[keep], i, kind)
    raise ValueError(f"unknown anomaly kind {kind!r}: use spike_after_idle, spike, stuck or dropout")


KINDS: tuple[str, ...] = ("spike_after_idle", "spike", "stuck", "dropout")
