"""Seeded synthetic series with labelled anomalies, one family per kind of city signal.

Why our own generator: PyPI `timeeval-gutentag` pins scipy < 1.15, which pins numpy < 2.3, and
the project runs numpy 2.4; so this small generator covers the same ground for the development
set. Every family is a shape real feeds have and the detectors were not tuned on:

- bursty: on/off (a pump, a parking bay, a traffic lane at night): 0 most of the time, bursts at
  a level; normal switching must not be a spike;
- irregular: event-driven sampling (exponential gaps, some bursts of quick readings); a gap of 3x
  the median gap is normal there;
- sine: smooth periodic, noise-free, quantised to 0.01; plateaus and ramps;
- quantised: mostly-zero counts (Poisson, low rate), rain-like;
- trending: a trend plus daily seasonality plus Gaussian noise;
- heavy_tailed: Student-t (2 degrees of freedom) noise around a slow level.

Anomaly kinds: spike, level_shift, drift, stuck (a frozen value), dropout (missing readings; the
anomaly is the first reading after it), period (changed periodicity), noise (changed variance).
Each family has `ANOMALOUS_FILES` files with 1-3 anomalies and `CLEAN_FILES` files with none (NAB
counts their false positives). Labels are anomaly onsets (rows); windows follow NAB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROWS = 4000
ANOMALOUS_FILES = 8
CLEAN_FILES = 2
STEP_S = 300  # 5-minute readings unless the family is irregular
T0_US = 1_700_000_000_000_000

FAMILY_KINDS: dict[str, tuple[str, ...]] = {
    "bursty": ("spike", "level_shift", "stuck", "dropout"),
    "irregular": ("spike", "level_shift", "dropout", "noise"),
    "sine": ("spike", "level_shift", "stuck", "period", "noise"),
    "quantised": ("level_shift", "spike", "stuck"),
    "trending": ("spike", "level_shift", "drift", "noise"),
    "heavy_tailed": ("level_shift", "stuck", "noise", "spike"),
}


@dataclass
class SynthFile:
    """One generated series: timestamps (us), values, anomaly onset rows and their kinds."""

    name: str
    ts_us: np.ndarray
    values: np.ndarray
    onsets: list[int]
    kinds: list[str]


def _base(family: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """A clean series of the family (timestamps, values) and what the anomalies need to know."""
    ts = T0_US + np.arange(n, dtype=np.int64) * STEP_S * 1_000_000
    i = np.arange(n, dtype=np.float64)
    if family == "bursty":
        level = rng.uniform(20, 100)
        p_on, mean_len = rng.uniform(0.01, 0.04), rng.uniform(5, 20)
        on = np.zeros(n, bool)
        k = 0
        while k < n:
            if rng.random() < p_on:
                d = int(rng.geometric(1 / mean_len))
                on[k:k + d] = True
                k += d
            k += 1
        v = np.where(on, level * (1 + 0.05 * rng.normal(size=n)), 0.0)
        return ts, np.round(v, 1), {"scale": level, "on": on}
    if family == "irregular":
        gaps = rng.exponential(60.0, n)
        burst = rng.random(n) < 0.1
        gaps[burst] = rng.uniform(1, 5, burst.sum())
        ts = T0_US + np.cumsum(np.maximum(gaps, 1.0) * 1e6).astype(np.int64)
        walk = np.cumsum(rng.normal(0, 0.05, n))
        v = 20 + walk - np.convolve(walk, np.ones(200) / 200, mode="same") + rng.normal(0, 0.3, n)
        return ts, np.round(v, 2), {"scale": 0.3}
    if family == "sine":
        period, amp = rng.choice([96, 144, 288]), rng.uniform(5, 20)
        v = amp * np.sin(2 * np.pi * i / period)
        if rng.random() < 0.5:  # plateaus (day/night): clipped
            v = np.clip(v, -0.6 * amp, 0.6 * amp)
        return ts, np.round(10 + v, 2), {"scale": amp, "period": period, "amp": amp}
    if family == "quantised":
        rate = rng.uniform(0.03, 0.3)
        v = rng.poisson(rate, n).astype(np.float64)
        if rng.random() < 0.5:
            v = np.round(v * rng.uniform(0.1, 0.5), 1)  # rain-like tips of a bucket
        return ts, v, {"scale": max(float(v.max()), 1.0), "rate": rate}
    if family == "trending":
        sigma = rng.uniform(0.5, 2)
        v = 50 + rng.uniform(-0.01, 0.01) * i + 5 * sigma * np.sin(2 * np.pi * i / 288) + rng.normal(0, sigma, n)
        return ts, np.round(v, 2), {"scale": sigma}
    if family == "heavy_tailed":
        sigma = rng.uniform(1, 3)
        v = 100 + np.cumsum(rng.normal(0, 0.02, n)) + sigma * rng.standard_t(2, n)
        return ts, np.round(v, 2), {"scale": sigma}
    raise ValueError(family)


def _apply(kind: str, family: str, ts: np.ndarray, v: np.ndarray, i: int, info: dict,
           rng: np.random.Generator, drop: np.ndarray) -> int:
    """Inject one anomaly at row i; returns the row of its first observable reading."""
    n = len(v)
    sc = info["scale"]
    length = int(rng.integers(60, 200))
    end = min(n, i + length)
    if kind == "spike":
        if family == "bursty":
            v[i] = max(v[i], 0) + rng.uniform(3, 5) * sc
        elif family == "quantised":
            v[i] = rng.uniform(5, 10) * sc
        elif family == "heavy_tailed":
            v[i] += rng.choice([-1, 1]) * rng.uniform(40, 60) * sc
        else:
            v[i] += rng.choice([-1, 1]) * rng.uniform(8, 12) * sc
        return i
    if kind == "level_shift":
        if family == "bursty":
            v[i:end] = np.where(v[i:end] > 0, v[i:end] * 2.0, v[i:end])
            on = np.flatnonzero(v[i:end] > 0)
            return i + int(on[0]) if len(on) else i
        if family == "quantised":
            v[i:end] = rng.poisson(max(4.0, 15 * info["rate"]), end - i) * (v.max() / max(v.max(), 1.0) or 1.0)
            return i
        v[i:end] += rng.choice([-1, 1]) * rng.uniform(4, 6) * sc
        return i
    if kind == "drift":
        v[i:end] += rng.choice([-1, 1]) * rng.uniform(6, 10) * sc * np.linspace(0, 1, end - i)
        return i
    if kind == "stuck":
        if family in ("bursty", "quantised"):
            val = sc * rng.uniform(0.5, 1.0) if family == "bursty" else max(float(v[i]), 1.0)
            v[i:end] = np.round(val, 1)
        else:
            v[i:end] = v[i]
        return i
    if kind == "dropout":
        d = int(rng.integers(30, 60))
        drop[i:i + d] = True
        return min(n - 1, i + d)
    if kind == "period":
        p, a = info["period"], info["amp"]
        seg = np.arange(end - i, dtype=np.float64)
        v[i:end] = np.round(10 + a * np.sin(2 * np.pi * (i + seg * 3) / p), 2)
        return i
    if kind == "noise":
        v[i:end] += rng.normal(0, 4 * sc if family != "sine" else 0.1 * sc, end - i)
        v[i:end] = np.round(v[i:end], 2)
        return i
    raise ValueError(kind)


def generate(seed: int = 11) -> list[SynthFile]:
    """Every family's files, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    files: list[SynthFile] = []
    for family, kinds in FAMILY_KINDS.items():
        for k in range(ANOMALOUS_FILES + CLEAN_FILES):
            ts, v, info = _base(family, ROWS, rng)
            v = v.astype(np.float64)
            drop = np.zeros(len(v), bool)
            onsets: list[int] = []
            chosen: list[str] = []
            if k < ANOMALOUS_FILES:
                m = int(rng.integers(1, 4))
                half = int(0.10 * ROWS / m) // 2
                lo = int(min(0.15 * ROWS, 750)) + half + 1
                slots = np.linspace(lo, ROWS - half - 250, m + 1).astype(int)
                for j in range(m):
                    i = int(rng.integers(slots[j], max(slots[j] + 1, slots[j + 1] - 250)))
                    kind = str(kinds[(k + j) % len(kinds)])
                    onsets.append(_apply(kind, family, ts, v, i, info, rng, drop))
                    chosen.append(kind)
            keep = ~drop
            row_of = np.cumsum(keep) - 1
            onsets = [int(row_of[min(o, len(v) - 1)]) for o in onsets]
            name = f"{family}_{k:02d}" + ("_clean" if k >= ANOMALOUS_FILES else "")
            files.append(SynthFile(name, ts[keep], v[keep], onsets, chosen))
    return files
