"""The detectors' value ring stores float32 offsets from a per-slot float64 base (detect/_kernel.py):
half the bytes of a float64 ring, without float32's loss on large values.

What must hold, over generated series of any magnitude and step: every entry read back is within
a few float32 roundings *of the window's spread* (not of the value's magnitude) of the value that
was fed, so a 1.2 million kWh counter keeps its 0.1 steps (float32 itself keeps only 0.125 there),
and the rolling median the detectors use stays within that of the exact median.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from urbanpulse.detect import DetectionSettings, DetectorBank
from urbanpulse.detect.layout import S

MIN_US = 60_000_000
T0 = 1_700_000_000_000_000


def _series(kind: str, level: float, step: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "counter":  # an energy meter: a running total in steps of `step`
        return level + step * np.cumsum(rng.integers(0, 3, n)).astype(np.float64)
    if kind == "walk":
        return level + step * np.cumsum(rng.normal(0, 1, n))
    if kind == "quantised":  # a reading resting on a few levels
        return level + step * rng.integers(0, 4, n).astype(np.float64)
    x = level + step * rng.normal(0, 1, n)  # noise with the odd far outlier
    x[rng.random(n) < 0.02] += step * 1e4
    return x


def _decoded(bank: DetectorBank) -> np.ndarray:
    return bank.state[0, S["vbase"]] + bank.values[0].astype(np.float64)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["counter", "walk", "quantised", "noise"]),
       level=st.sampled_from([0.0, 20.0, -40.0, 1.2e6, 3.7e9, 1e12]),
       step=st.sampled_from([1e-3, 0.1, 0.7, 25.0]),
       n=st.integers(1, 700), seed=st.integers(0, 2**16), chunk=st.integers(1, 300))
@example(kind="counter", level=1.2e6, step=0.1, n=600, seed=1, chunk=97)
def test_value_ring_keeps_the_precision_of_the_window_not_of_float32(kind: str, level: float, step: float, n: int,
                                                                     seed: int, chunk: int) -> None:
    x = _series(kind, level, step, n, seed)
    ts = T0 + np.arange(n, dtype=np.int64) * MIN_US
    bank = DetectorBank(DetectionSettings())
    bank.assign(np.array([0]), ["meter-1"], ["energy"])
    R = bank.ring_values
    for i in range(0, n, chunk):
        bank.score(np.zeros(len(x[i:i + chunk]), np.int64), ts[i:i + chunk], x[i:i + chunk])
    assert bank.values.dtype == np.float32
    got = _decoded(bank)
    held = np.arange(max(0, n - R), n)  # reading i sits at ring position i % R
    # the spread the entries are encoded within: the values seen while they were in the ring
    recent = x[max(0, n - 2 * R):]
    spread = float(recent.max() - recent.min())
    d = np.abs(np.diff(x))
    res = float(d[d > 0].min()) if (d > 0).any() else 0.0  # the series' smallest step
    err = np.abs(got[held % R] - x[held])
    tol = 2.0**-9 * res + 2.0**-18 * spread + 4 * np.spacing(np.abs(x[held]))
    assert (err <= tol).all(), (err.max(), spread, res)
    # under one base (not rebased: the base is still the first value) order and ties are kept
    # exactly, which the medians and a MAD of exactly 0 depend on; `quantised` never drifts
    a, b = x[held], got[held % R]
    if bank.state[0, S["vbase"]] == x[0]:
        assert (np.sign(a[:, None] - a[None, :]) == np.sign(b[:, None] - b[None, :])).all()
    else:
        assert kind != "quantised"
    if kind == "counter" and len(held) > 1:  # the steps themselves survive (float32 would give 0.125s)
        steps = np.diff(got[held % R])
        assert np.allclose(steps, np.diff(x[held]), rtol=0, atol=2.0**-8 * step + 2**-18 * spread)
    # the rolling median the detectors score against: within the same bound of the exact one
    if n >= 16 and n % 8 == 0:  # refreshed on this very reading (every 8th)
        exact = float(np.median(x[held]))
        assert abs(bank.state[0, S["med"]] - exact) <= 2.0**-9 * res + 2.0**-18 * spread + 4 * np.spacing(abs(exact))


def test_value_ring_is_half_the_bytes_of_float64() -> None:
    bank = DetectorBank(DetectionSettings())
    bank.ensure_capacity(10)
    assert bank.values.dtype == np.float32 and bank.values.nbytes == bank.capacity * 4 * bank.ring_values
    assert np.isnan(bank.state[:, S["vbase"]]).all()  # no base until a slot's first value


def test_evicted_slot_forgets_its_base() -> None:
    bank = DetectorBank(DetectionSettings())
    bank.assign(np.array([0]), ["meter-1"], ["energy"])
    bank.score(np.zeros(3, np.int64), T0 + np.arange(3) * MIN_US, np.array([1.2e6, 1.2e6 + 0.1, 1.2e6 + 0.2]))
    assert bank.state[0, S["vbase"]] == 1.2e6  # the first value (no drift of 2^14 resolutions)
    bank.evict(np.array([0]))
    assert np.isnan(bank.state[0, S["vbase"]]) and np.isnan(bank.values[0]).all()
    bank.assign(np.array([0]), ["lamp-2"], ["temperature"])
    bank.score(np.zeros(1, np.int64), np.array([T0]), np.array([21.5]))
    assert bank.state[0, S["vbase"]] == 21.5 and bank.values[0, 0] == 0.0
