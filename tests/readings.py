"""Decoded readings as validation hands them to the batch writer and the analytics, for tests that
write or analyse generated readings without going through a format: written once so that every such
test builds its columns alike."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from urbanpulse.model import ReadingColumns


def readings_columns(sensors: Sequence[str], metrics: str | Sequence[str], ts_us: Sequence[int] | np.ndarray,
                     value: Sequence[float] | np.ndarray, flags: Sequence[int] | np.ndarray | None = None
                     ) -> ReadingColumns:
    """Readings of ``sensors`` (one metric for all, or one each) at ``ts_us`` (µs) with ``value``:
    no position or unit, each its own message (``msg`` its row, ``item`` -1), ``flags`` 0 unless given."""
    n = len(ts_us)
    return ReadingColumns(
        sensor_id=list(sensors), metric=[metrics] * n if isinstance(metrics, str) else list(metrics),
        ts_us=np.asarray(ts_us, np.int64), value=np.asarray(value, np.float64), lat=np.full(n, np.nan),
        lon=np.full(n, np.nan), unit=[None] * n, msg=np.arange(n, dtype=np.int32), item=np.full(n, -1, np.int32),
        has_null_value=np.zeros(n, bool),
        flags=np.zeros(n, np.int16) if flags is None else np.asarray(flags, dtype=np.int16))
