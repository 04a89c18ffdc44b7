"""Streaming anomaly detectors, vectorised across series, and the backtest that reuses them."""

from urbanpulse.detect.bank import DetectorBank, Scores, Silences
from urbanpulse.detect.settings import DETECTOR_NAMES, DetectionSettings

__all__ = ["DETECTOR_NAMES", "DetectionSettings", "DetectorBank", "Scores", "Silences"]
