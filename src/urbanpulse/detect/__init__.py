"""Streaming anomaly detectors, vectorised across series, and the backtest that reuses them."""

from typing import TYPE_CHECKING

from urbanpulse.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from urbanpulse.detect.bank import DetectorBank, Scores, Silences
    from urbanpulse.detect.settings import DETECTOR_NAMES, DetectionSettings

#: name -> module: imported on first use (PEP 562), so importing one submodule (a settings
#: model the configuration needs) does not import the whole package at start-up
_LAZY = {
    "DETECTOR_NAMES": "urbanpulse.detect.settings",
    "DetectionSettings": "urbanpulse.detect.settings",
    "DetectorBank": "urbanpulse.detect.bank",
    "Scores": "urbanpulse.detect.bank",
    "Silences": "urbanpulse.detect.bank",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["DETECTOR_NAMES", "DetectionSettings", "DetectorBank", "Scores", "Silences"]
