"""Per-series event-time windows held in numpy arrays, with per-source watermarks."""

from typing import TYPE_CHECKING

from urbanpulse.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from urbanpulse.windows.aggregate import Moments
    from urbanpulse.windows.settings import WindowSettings
    from urbanpulse.windows.state import ClosedWindows, Observed, WindowState

#: name -> module: imported on first use (PEP 562), so importing one submodule (a settings
#: model the configuration needs) does not import the whole package at start-up
_LAZY = {
    "ClosedWindows": "urbanpulse.windows.state",
    "Moments": "urbanpulse.windows.aggregate",
    "Observed": "urbanpulse.windows.state",
    "WindowSettings": "urbanpulse.windows.settings",
    "WindowState": "urbanpulse.windows.state",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["ClosedWindows", "Moments", "Observed", "WindowSettings", "WindowState"]
