"""Per-series event-time windows held in numpy arrays, with per-source watermarks."""

from urbanpulse.windows.aggregate import Moments
from urbanpulse.windows.settings import WindowSettings
from urbanpulse.windows.state import ClosedWindows, Observed, WindowState

__all__ = ["ClosedWindows", "Moments", "Observed", "WindowSettings", "WindowState"]
