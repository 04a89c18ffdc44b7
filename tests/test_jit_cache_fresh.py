"""Numba keys its on-disk cache of a kernel on the kernel file's time stamp and size only, while the
detectors' kernel freezes constants from `detect/layout.py` into its machine code: a JIT run after a
change to layout.py alone would load the old machine code and compute with the old constants.
`aot.kernel` in JIT mode drops a kernel's cache files when the kernel packages' sources changed since
they were written (`aot.drop_stale_jit_cache`), and keeps them otherwise."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from urbanpulse import aot

# a JIT run of one cached kernel function: writes Numba's cache files beside the kernel
_CALL = ("import numpy as np; from urbanpulse import aot; k = aot.kernel('urbanpulse.detect._kernel');"
         "print(k._n_finite(np.array([1.0, np.nan, 2.0]), 3))")


def _tree(tmp_path: Path) -> Path:
    """A copy of the package's sources, to change without touching the real one."""
    src = Path(aot.__file__).resolve().parents[1]
    dst = tmp_path / "src"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    return dst


def _run(tree: Path, code: str) -> str:
    env = {"PYTHONPATH": str(tree), "URBANPULSE_KERNELS": "jit", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def _cached(tree: Path) -> dict[str, int]:
    cache = tree / "urbanpulse" / "detect" / "__pycache__"
    return {f.name: f.stat().st_mtime_ns for f in cache.glob("_kernel.*.nb[ic]")}


def test_a_change_to_layout_alone_drops_the_kernels_jit_cache_and_nothing_else_does(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    assert _run(tree, _CALL) == "2"
    first = _cached(tree)
    assert first, "Numba wrote no cache for the kernel: nothing to show"

    # nothing changed: the cache is kept as it is (no recompilation)
    assert _run(tree, _CALL) == "2"
    assert _cached(tree) == first

    # a constant's module changed, the kernel file did not: the old machine code must not be loaded
    layout = tree / "urbanpulse" / "detect" / "layout.py"
    layout.write_text(layout.read_text() + "\n# a changed constant would be here\n")
    assert _run(tree, _CALL) == "2"
    again = _cached(tree)
    assert again and all(again[n] != first.get(n) for n in again)  # compiled and written anew, not loaded
