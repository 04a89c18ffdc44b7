"""One series scored the way the detection tests score their generated series, and where a
detector's decision turns on (an alert's onset): written once so that every such test builds its
bank, slot and timestamps alike."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from detect_reference import ReferenceBank
from urbanpulse.detect import DetectionSettings, DetectorBank, Scores

T0 = 1_700_000_000_000_000  # µs, 2023-11-14T22:13:20Z
MIN_US = 60_000_000


def score_one(x: np.ndarray, ts: np.ndarray | None = None, settings: DetectionSettings | None = None, *,
              metric: str = "value", step_us: int = MIN_US, off_stage: str | tuple[str, ...] | None = None) -> Scores:
    """``x`` scored as one series (sensor ``s0``, ``metric``) by a fresh bank with ``settings``
    (default: the built-in defaults), at timestamps ``ts`` (µs) or ``step_us`` apart from T0.
    ``off_stage``: by the interpreted kernel with that score-only stage off (`ReferenceBank`)."""
    settings = settings or DetectionSettings()
    bank = ReferenceBank(settings, off_stage) if off_stage else DetectorBank(settings)
    bank.assign(np.zeros(1, np.int64), ["s0"], [metric])
    if ts is None:
        ts = T0 + np.arange(len(x), dtype=np.int64) * step_us
    return bank.score(np.zeros(len(x), np.int64), ts, np.asarray(x, np.float64))


def anomaly_scores(ts: np.ndarray, *copies: np.ndarray) -> list[np.ndarray]:
    """Each copy's anomaly_score, one slot each, scored in one batch at the defaults."""
    bank = DetectorBank(DetectionSettings())
    k = len(copies)
    bank.assign(np.arange(k, dtype=np.int64), [f"s{i}" for i in range(k)], ["value"] * k)
    sc = bank.score(np.repeat(np.arange(k, dtype=np.int64), len(ts)), np.tile(ts, k), np.concatenate(copies))
    bounds = np.searchsorted(sc.slot, np.arange(k + 1))
    return [np.asarray(sc.anomaly_score[bounds[i]:bounds[i + 1]]) for i in range(k)]


def onsets(sc: Scores, name: str) -> np.ndarray:
    """Rows of ``sc`` where detector ``name``'s decision turns on."""
    d = sc.decision[:, sc.names.index(name)]
    return np.flatnonzero(d & ~np.r_[False, d[:-1]])


def anomaly_at_inputs(sc: Scores, n: int) -> np.ndarray:
    """The fused anomaly score at each of the ``n`` input readings (0 where one was not scored)."""
    full = np.zeros(n)
    full[sc.index] = sc.anomaly_score
    return full


def spike_pair_scores(score: Callable[[np.ndarray], Scores], size: float, factor: float,
                      seed: int) -> tuple[float, float]:
    """The anomaly scores of a spike of ``size`` sigmas and of one ``factor`` times bigger at the same
    reading (row 1400) of the same history (1,500 readings of N(20, 1) drawn from ``seed``), each
    scored by ``score``: the pair a monotonicity property compares."""
    x = 20 + np.random.default_rng(seed).normal(0, 1, 1500)
    out = []
    for s in (size, size * factor):
        y = x.copy()
        y[1400] += s
        out.append(float(score(y).anomaly_score[1400]))
    return out[0], out[1]


def assert_score_only(clean: np.ndarray, injected: np.ndarray, ts: np.ndarray, stage: str) -> None:
    """A score-only stage changes no detector's score or decision and no alert (on `clean` and on
    `injected`), and scores nothing on the clean copy (its anomaly_score the same without it)."""
    for x in (clean, injected):
        on, off = score_one(x, ts), score_one(x, ts, off_stage=stage)
        assert np.array_equal(on.decision, off.decision)
        assert np.array_equal(on.score, off.score)
        assert np.array_equal(on.alert, off.alert)
    on, off = score_one(clean, ts), score_one(clean, ts, off_stage=stage)
    assert np.array_equal(on.anomaly_score, off.anomaly_score)
