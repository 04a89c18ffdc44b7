"""The kernel's specification for the tests: DetectorBank with the per-reading state machine run
as plain Python (numba's `py_func` of `_kernel.process`), numpy scalar semantics throughout.

Why: the kernel must compute exactly what its Python source says (no fastmath reassociation, no
FMA contraction, numpy's NaN and division-by-zero rules via error_model="numpy"); comparing the
compiled kernel with its own interpreted source, outputs and state bit-identical, checks that on
every code path a test stream reaches. (It replaces the former round-based numpy re-implementation,
`detect/reference.py`, which every detector change had to duplicate.) The per-reading stages `process`
calls (`_kernel.STAGES`: one function per detector and per shared stage) run as their Python source
too; the order-statistic helpers (`_select`, `_gather`, the refreshes) and the small numeric helpers
(`_tail`, `_fmax`, ...) stay compiled: they are checked by the values they feed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from urbanpulse.detect import _kernel
from urbanpulse.detect.bank import EAGER_REFRESH, REFRESH_EVERY, DetectorBank, Scores
from urbanpulse.detect.settings import DETECTOR_NAMES, DetectionSettings


def scores_nothing(*args: object) -> float:
    """A score-only stage switched off: it scores 0 on every reading and learns nothing."""
    return 0.0


@contextmanager
def interpreted_stages(off_stage: str | tuple[str, ...] | None = None) -> Iterator[None]:
    """While open, `_kernel.process.py_func` calls its stages' Python source (`py_func`), not their
    compiled code: the module's globals are what the interpreted source looks its callees up in.
    `off_stage` (a `_kernel` function's name, or several) is replaced by `scores_nothing`: what the other stages
    find without a score-only stage (its tests: every decision the same with it off)."""
    compiled = {f.py_func.__name__: f for f in _kernel.STAGES}
    off = (off_stage,) if isinstance(off_stage, str) else tuple(off_stage or ())
    try:
        for name, f in compiled.items():
            setattr(_kernel, name, f.py_func)
        for name in off:
            setattr(_kernel, name, scores_nothing)
        yield
    finally:
        for name, f in compiled.items():
            setattr(_kernel, name, f)


class ReferenceBank(DetectorBank):
    """DetectorBank scoring with the interpreted kernel source (slow: tests only); `off_stage` names a
    score-only stage to switch off (`interpreted_stages`)."""

    def __init__(self, settings: DetectionSettings, off_stage: str | tuple[str, ...] | None = None) -> None:
        super().__init__(settings)
        self.off_stage = off_stage

    def _process(self, slot: np.ndarray, ts_us: np.ndarray, value: np.ndarray, emit: bool) -> Scores | None:
        order, s, t, x = self._scorable(slot, ts_us, value)
        n = len(order)
        out = np.zeros((n, len(DETECTOR_NAMES)), np.float64)
        fused = np.zeros(n, np.float64)
        veto = np.zeros(n, np.uint8)
        if n:
            with np.errstate(all="ignore"), interpreted_stages(self.off_stage):
                _kernel.process.py_func(s, t, x, self.last_ts, self.profile, self.profiles.table, self.state,
                                        self.values, self.changes, self.gaps, out, fused, veto,
                                        REFRESH_EVERY, EAGER_REFRESH, self.season)
        if not emit:
            return None
        return self._result(order, s, t, x, out, fused, veto)
