"""A package's public names imported from their modules on first use (PEP 562).

Importing one submodule of a package (a settings model the configuration needs) runs the
package's ``__init__``; when that imported every submodule, reading the configuration imported
the whole service and the sources started connecting later (benchmarks/README.md, "The start
overlapped"). A package lists its names and their modules once and gets its ``__getattr__`` here.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_getattr(package: str, modules: Mapping[str, str]) -> Callable[[str], object]:
    """The module-level ``__getattr__`` of ``package``: name -> imported from ``modules[name]``
    on first use and kept in the package, so later lookups are ordinary attribute reads."""

    def __getattr__(name: str) -> object:  # noqa: N807 - the PEP 562 hook's name
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
