"""The sensor registry's expected reporting interval feeds the silence detector.

Precedence: an interval set in the detection config wins; otherwise the registry's; otherwise
the interval is learned from the series' own gaps (which needs `silence.min_history` readings).
"""

from __future__ import annotations

import numpy as np

from urbanpulse.detect import DetectionSettings, DetectorBank

MIN_US = 60_000_000
T0 = 1_700_000_000_000_000


def _series(n: int, gap_at: int, gap_min: int) -> tuple[np.ndarray, np.ndarray]:
    ts = np.arange(n, dtype=np.int64) * MIN_US + T0
    ts[gap_at:] += gap_min * MIN_US
    return ts, 20 + np.random.default_rng(0).normal(0, 1, n)


def _silence_rows(bank: DetectorBank, slot: int, ts: np.ndarray, x: np.ndarray) -> list[int]:
    sc = bank.score(np.full(len(ts), slot, np.int64), ts, x)
    return np.flatnonzero(sc.decision[:, sc.names.index("silence")]).tolist()


def _bank(intervals: dict[tuple[str, str], float], settings: DetectionSettings | None = None) -> DetectorBank:
    bank = DetectorBank(settings or DetectionSettings(), lambda s, m: intervals.get((s, m)))
    bank.assign(np.arange(2), ["registered", "unregistered"], ["pm2_5", "pm2_5"])
    return bank


def test_a_registered_interval_judges_gaps_before_one_could_be_learned() -> None:
    # 10 one-minute readings, then 20 minutes of nothing: too little history to learn an interval
    ts, x = _series(12, gap_at=10, gap_min=20)
    bank = _bank({("registered", "pm2_5"): 60.0})
    assert _silence_rows(bank, 0, ts, x) == [10]
    assert _silence_rows(bank, 1, ts, x) == []


def test_a_registered_interval_overrides_what_the_gaps_would_teach() -> None:
    # a sensor registered as hourly that happens to report every minute: a 20-minute gap is normal
    ts, x = _series(200, gap_at=150, gap_min=20)
    bank = _bank({("registered", "pm2_5"): 3600.0})
    assert _silence_rows(bank, 0, ts, x) == []
    assert _silence_rows(bank, 1, ts, x) == [150]  # learned one-minute interval: silent


def test_an_interval_set_in_the_config_wins_over_the_registry() -> None:
    settings = DetectionSettings(defaults={"silence": {"expected_interval_s": 3600}})
    ts, x = _series(12, gap_at=10, gap_min=20)
    bank = _bank({("registered", "pm2_5"): 60.0}, settings)
    assert _silence_rows(bank, 0, ts, x) == []
