"""Streaming anomaly detectors, vectorised across series, and the backtest that reuses them."""

from typing import TYPE_CHECKING

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


def __getattr__(name: str) -> object:
    """The package's names, each imported from its module when first asked for."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DETECTOR_NAMES", "DetectionSettings", "DetectorBank", "Scores", "Silences"]
