"""Per-series event-time windows held in numpy arrays, with per-source watermarks."""

from typing import TYPE_CHECKING

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


def __getattr__(name: str) -> object:
    """The package's names, each imported from its module when first asked for."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ClosedWindows", "Moments", "Observed", "WindowSettings", "WindowState"]
