"""Detectors that adapt to the series (issue 11): small generated series of the shapes that broke
the corpus-tuned defaults, each clean (no alert) and with one injected anomaly (found); and the
threshold settings trap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from urbanpulse.config import load_settings
from urbanpulse.detect import DetectionSettings, DetectorBank

MIN_US = 60_000_000
T0 = 1_700_000_000_000_000


def _score(x: np.ndarray, ts: np.ndarray | None = None, settings: DetectionSettings | None = None,
           metric: str = "value"):
    bank = DetectorBank(settings or DetectionSettings())
    bank.assign(np.zeros(1, np.int64), ["s0"], [metric])
    if ts is None:
        ts = T0 + np.arange(len(x), dtype=np.int64) * MIN_US
    return bank.score(np.zeros(len(x), np.int64), ts, np.asarray(x, np.float64))


def _alerts(sc) -> dict[str, list[int]]:
    """Rows where each detector's decision rises (alert onsets), by detector."""
    out = {}
    for j, name in enumerate(sc.names):
        d = sc.decision[:, j]
        on = np.flatnonzero(d & ~np.r_[False, d[:-1]])
        if len(on):
            out[name] = on.tolist()
    return out


# -- the settings trap ---------------------------------------------------------------------------

def test_threshold_limits_without_enabled_turn_the_detector_on(tmp_path: Path) -> None:
    s = DetectionSettings(metrics={"pm2_5": {"threshold": {"high": 250, "clear_high": 200}}})
    bank = DetectorBank(s)
    assert "threshold" in bank.names
    bank.assign(np.zeros(1, np.int64), ["dongsi"], ["pm2_5"])
    sc = bank.score(np.zeros(3, np.int64), T0 + np.arange(3, dtype=np.int64) * MIN_US, np.array([50, 900, 60.0]))
    assert sc.decision[:, sc.names.index("threshold")].tolist() == [False, True, False]
    assert bank.severity(0, "threshold") == "critical"
    # the example config's comment, copied as it is, is a working critical threshold
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detection:\n  metrics:\n    pm2_5: {threshold: {high: 250, clear_high: 200, severity: critical}}\n")
    assert load_settings(cfg).detection.metrics["pm2_5"]["threshold"]["high"] == 250
    assert "threshold" in DetectorBank(load_settings(cfg).detection).names


def test_threshold_explicitly_disabled_with_limits_stays_off() -> None:
    s = DetectionSettings(metrics={"pm2_5": {"threshold": {"enabled": False, "high": 250}}})
    assert "threshold" not in DetectorBank(s).names
    assert "threshold" not in DetectorBank(DetectionSettings()).names
    assert DetectionSettings.model_validate({"defaults": {"threshold": {"low": -5}}}).defaults.threshold.enabled
