"""Reference detectors that calibrate the harness (they are not product code).

NAB publishes scores for its own simple detectors (standard profile: null 0, random ~11,
windowed Gaussian ~40, HTM ~70). Running comparable baselines here shows whether this corpus and
scorer are in a sensible range before anyone reads a number for `urbanpulse detect`.
All are causal: a row's score uses only rows up to and including it.

- null: anomaly_score 0 everywhere (defines 0 after normalisation).
- random: uniform random scores, seeded (NAB's random detector).
- zscore: windowed Gaussian: |z| of the reading against the mean/std of the previous
  `ZSCORE_WINDOW` readings, mapped to [0, 1) by |z| / (|z| + 10). Any increasing map gives the same
  NAB score; this one does not saturate, so the threshold sweep can tell large z apart.
- rules: the largest of three pieces of evidence, mapped the same way: |z|, missing readings
  before this one (time since the previous reading / median interval - 1) and the length of the
  current run of identical readings / 2: the three simple signals a city data engineer would write
  first. It shows how much covering gaps and stuck sensors matters on this corpus.
"""

from __future__ import annotations

import numpy as np

ZSCORE_WINDOW = 500
NAMES = ("null", "random", "zscore", "rules")


def _to_unit(evidence: np.ndarray) -> np.ndarray:
    return evidence / (evidence + 10.0)


def abs_z(values: np.ndarray, window: int = ZSCORE_WINDOW) -> np.ndarray:
    v = values.astype(np.float64)
    c1 = np.r_[0.0, np.cumsum(v)]
    c2 = np.r_[0.0, np.cumsum(v * v)]
    i = np.arange(len(v))
    lo = np.maximum(0, i - window)
    cnt = i - lo  # previous readings only
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (c1[i] - c1[lo]) / cnt
        var = (c2[i] - c2[lo]) / cnt - mean * mean
        z = np.abs(v - mean) / np.sqrt(np.maximum(var, 1e-12))
    z[cnt < 10] = 0.0
    return np.nan_to_num(z)


def missing_before(ts_us: np.ndarray) -> np.ndarray:
    dt = np.diff(ts_us, prepend=ts_us[:1]).astype(np.float64)
    med = float(np.median(dt[1:])) if len(dt) > 1 else 1.0
    return np.maximum(dt / max(med, 1.0) - 1.0, 0.0)


def flat_run(values: np.ndarray) -> np.ndarray:
    same = np.r_[False, values[1:] == values[:-1]]
    run = np.zeros(len(values))
    count = 0
    for k, s in enumerate(same):  # simple, fine for a baseline
        count = count + 1 if s else 0
        run[k] = count
    return run


def detect(name: str, ts_us: np.ndarray, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if name == "null":
        return np.zeros(len(values))
    if name == "random":
        return rng.random(len(values))
    if name == "zscore":
        return _to_unit(abs_z(values))
    if name == "rules":
        return _to_unit(np.maximum.reduce([abs_z(values), missing_before(ts_us), flat_run(values) / 2.0]))
    raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(NAMES)}")
