"""Stream-analytics stand-ins for pipeline tests (pipeline/handoff.py ``BatchAnalytics``).

With analytics the pipeline resolves a batch's series ids as it is formed and asks the analytics
to prepare, analyse and write it; these stand-ins analyse nothing, so a test sees only the
pipeline's side of that hand-off. Subclass and override the step a test is about."""

from __future__ import annotations

import numpy as np


class NullAnalytics:
    """Every step does nothing; each batch has a handle (so it is "analysed") and no alert change."""

    failed_batches = 0

    async def prepare(self, source, readings, series_ids):  # noqa: ANN001, ANN201
        return object()

    async def ready(self, handle):  # noqa: ANN001, ANN201
        return None

    async def write(self, conn, handle):  # noqa: ANN001, ANN201
        return None

    def committed(self, handle) -> None:  # noqa: ANN001
        return None

    async def tick(self):  # noqa: ANN201
        return None


class RecordingAnalytics(NullAnalytics):
    """Records the series ids (and the keys they stand for) each batch was prepared with."""

    def __init__(self) -> None:
        self.ids: list[np.ndarray] = []
        self.keys: list[list[tuple[str, str]]] = []

    async def prepare(self, source, readings, series_ids):  # noqa: ANN001, ANN201
        self.ids.append(np.asarray(series_ids).copy())
        self.keys.append(list(zip(readings.sensor_id, readings.metric)))
        return object()
