"""The kernel's specification for the tests: DetectorBank with the per-reading state machine run
as plain Python (numba's `py_func` of `_kernel.process`), numpy scalar semantics throughout.

Why: the kernel must compute exactly what its Python source says (no fastmath reassociation, no
FMA contraction, numpy's NaN and division-by-zero rules via error_model="numpy"); comparing the
compiled kernel with its own interpreted source, outputs and state bit-identical, checks that on
every code path a test stream reaches. (It replaces the former round-based numpy re-implementation,
`detect/reference.py`, which every detector change had to duplicate.) The order-statistic helpers
(`_select`, `_gather`) stay compiled: they are checked by the medians they feed.
"""

from __future__ import annotations

import numpy as np

from urbanpulse.detect import _kernel
from urbanpulse.detect.bank import EAGER_REFRESH, REFRESH_EVERY, DetectorBank, Scores
from urbanpulse.detect.settings import DETECTOR_NAMES


class ReferenceBank(DetectorBank):
    """DetectorBank scoring with the interpreted kernel source (slow: tests only)."""

    def _process(self, slot: np.ndarray, ts_us: np.ndarray, value: np.ndarray, emit: bool) -> Scores | None:
        order, s, t, x = self._scorable(slot, ts_us, value)
        n = len(order)
        out = np.zeros((n, len(DETECTOR_NAMES)), np.float64)
        fused = np.zeros(n, np.float64)
        veto = np.zeros(n, np.uint8)
        if n:
            with np.errstate(all="ignore"):
                _kernel.process.py_func(s, t, x, self.last_ts, self.profile, self.profiles.table, self.state,
                                        self.values, self.changes, self.gaps, out, fused, veto,
                                        REFRESH_EVERY, EAGER_REFRESH)
        if not emit:
            return None
        return self._result(order, s, t, x, out, fused, veto)
