"""The series table maps (sensor id, metric) to a small integer id, cached in memory.

Readings key on (series id, event time): an int4 writes 1.6-2x faster than two text
columns, and the series row is where the sensor registry later hangs units and locations.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import asyncpg
import numpy as np

from urbanpulse.storage.series_keys import SeriesKeys


class SeriesRegistry:
    """Resolves series ids for a batch; unknown series are registered idempotently."""

    def __init__(self) -> None:
        #: metric -> sensor id -> series id: the one map from keys to ids. A batch of one metric
        #: is looked up by the sensor string alone; a mixed batch metric by metric, per reading
        #: in C (no (sensor, metric) tuple built and hashed per reading, none kept per series)
        self._by_metric: dict[str, dict[str, int]] = {}
        #: series id -> (sensor id, metric), in sorted arrays (series_keys.py: 16 bytes a series,
        #: where a dict of tuples cost ~110)
        self._keys = SeriesKeys()
        self._lock = asyncio.Lock()
        #: the data class a new series is recorded with (privacy stage: its topic's or source's
        #: class, docs/privacy.md); None: open
        self.class_of: Callable[[str], str | None] | None = None
        #: ids of series this process's own insert created and nobody has asked about yet (see
        #: :meth:`created_here`); None: not kept (nothing would ask, e.g. analytics off)
        self._created: set[int] | None = None

    def __len__(self) -> int:
        return len(self._keys)

    def key_of(self, series_id: int) -> tuple[str, str] | None:
        """(sensor id, metric) of a series this process has seen (None otherwise): e.g. for the
        configured rollup intervals."""
        return self._keys.key_of(series_id)

    def sensors_of(self, series_ids: np.ndarray) -> list[str | None]:
        """The registry's own sensor id string of each series (None for one it has not seen): a
        holder that keeps a sensor id per series (the analytics' slot map) keeps this one, not a
        second copy decoded from a reading."""
        return self._keys.sensors_of(series_ids)

    def keep_created(self) -> None:
        """Remember from now on which series this process's insert creates, for
        :meth:`created_here` (the service turns it on with analytics: nothing else asks, and
        each id is remembered only until asked about)."""
        if self._created is None:
            self._created = set()

    def created_here(self, series_ids: np.ndarray) -> np.ndarray:
        """Bool per id: whether this process's own insert created that series and this is the
        first time it is asked about it (each id answers True once, then False).

        Why: a series just created has no stored readings, so the analytics need not ask
        PostgreSQL for its history when they first see it (the throughput benchmark's first four
        batches each bring ~500 new series, each asking under the batcher's lock). A series
        another process created (our insert met it), or one that was erased and registered again
        by someone else, is not ours and still gets its history looked up; one asked about again
        (an evicted series coming back) too. What another worker may store for a series in the
        milliseconds between our insert and this question is not looked for: a series' readings
        come from the partitions one worker owns."""
        created = self._created
        if not created:
            return np.zeros(len(series_ids), bool)
        ids = series_ids.tolist()
        mask = np.fromiter(map(created.__contains__, ids), bool, count=len(ids))
        created.difference_update(ids)
        return mask

    def forget(self, series_ids: list[int]) -> None:
        """Drop erased series from the cache (privacy erasure): their next reading registers anew."""
        if self._created is not None:
            self._created.difference_update(series_ids)
        for sid in series_ids:
            key = self._keys.key_of(sid)
            if key is not None:
                self._by_metric.get(key[1], {}).pop(key[0], None)
        self._keys.remove(series_ids)

    async def ids_for(self, pool: asyncpg.Pool, sensors: list[str], metrics: list[str]) -> np.ndarray:
        """int32 series id per reading, registering the series seen for the first time."""
        n = len(sensors)
        one_metric = bool(n) and metrics.count(metrics[0]) == n
        try:  # the common case, every series known: one C-level pass (a per-reading cost on the hot path)
            if one_metric and (by_sensor := self._by_metric.get(metrics[0])) is not None:
                # one metric in the batch (a topic per metric): keyed by the sensor alone, ~2x faster
                return np.fromiter(map(by_sensor.get, sensors), np.int32, count=n)
            # per reading its metric's map, then the sensor in it (an unknown metric: None, TypeError)
            return np.fromiter(map(dict.get, map(self._by_metric.get, metrics), sensors), np.int32, count=n)
        except TypeError:  # a None: some series are new
            pass
        if one_metric:
            # new series in a batch of one metric: found and looked up by the sensor alone too. With
            # a (sensor, metric) tuple built and hashed twice per reading this path cost ~0.1 s of
            # the event loop per million readings in the throughput benchmark, whose first four
            # batches each bring a partition's new series (benchmarks/README.md ``spawn18``)
            metric = metrics[0]
            known = self._by_metric.get(metric, {})
            await self._register(pool, {(s, metric) for s in set(sensors) if s not in known})
            return np.fromiter(map(self._by_metric[metric].__getitem__, sensors), np.int32, count=n)
        by_metric = self._by_metric
        await self._register(pool, {(s, m) for s, m in zip(sensors, metrics) if s not in by_metric.get(m, ())})
        return np.fromiter(map(dict.__getitem__, map(by_metric.__getitem__, metrics), sensors), np.int32, count=n)

    async def _register(self, pool: asyncpg.Pool, keys: set[tuple[str, str]]) -> None:
        async with self._lock:
            by_metric = self._by_metric
            keys = {k for k in keys if k[0] not in by_metric.get(k[1], ())}
            if not keys:
                return
            sensors = [k[0] for k in keys]
            metrics = [k[1] for k in keys]
            class_of = self.class_of
            classes = [class_of(s) for s in sensors] if class_of is not None else [None] * len(sensors)
            async with pool.acquire() as conn:
                # a series seen again in a class (e.g. after the configuration classed its topic) takes it.
                # RETURNING gives the rows inserted (xmax = 0: created by this insert) and the ones
                # updated; only the rest (known, unchanged) need a second query. Rows known and
                # unchanged are left out of the INSERT: each row it tries takes a value of the id
                # sequence even when it conflicts, so a restart re-registering 100,000 known series
                # would push the ids 100,000 further each time, and the holders indexed by series
                # id (slot map, interval learner) grow with the highest id, not the series held
                rows = await conn.fetch("""
                    INSERT INTO series (sensor_id, metric, data_class)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS k(sensor_id, metric, data_class)
                    WHERE NOT EXISTS (
                        SELECT 1 FROM series s WHERE s.sensor_id = k.sensor_id AND s.metric = k.metric
                          AND (k.data_class IS NULL OR s.data_class IS NOT DISTINCT FROM k.data_class))
                    ORDER BY 1, 2
                    ON CONFLICT (sensor_id, metric) DO UPDATE SET data_class = EXCLUDED.data_class
                    WHERE EXCLUDED.data_class IS NOT NULL
                      AND series.data_class IS DISTINCT FROM EXCLUDED.data_class
                    RETURNING id, sensor_id, metric, xmax = 0 AS created""", sensors, metrics, classes)
                if len(rows) < len(keys):
                    got = {(r["sensor_id"], r["metric"]) for r in rows}
                    rest = [k for k in keys if k not in got]
                    rows += await conn.fetch("""
                        SELECT s.id, s.sensor_id, s.metric, false AS created FROM series s
                        JOIN unnest($1::text[], $2::text[]) AS k(sensor_id, metric)
                          ON s.sensor_id = k.sensor_id AND s.metric = k.metric""",
                        [k[0] for k in rest], [k[1] for k in rest])
            created = self._created
            if created is not None:
                created.update(r["id"] for r in rows if r["created"])
            ids = [r["id"] for r in rows]
            sensors = [r["sensor_id"] for r in rows]
            # the metric interned: each row brings its own copy of a name thousands of series share
            metrics = [sys.intern(r["metric"]) for r in rows]
            for sid, sensor, metric in zip(ids, sensors, metrics):
                by_metric.setdefault(metric, {})[sensor] = sid
            self._keys.add(ids, sensors, metrics)
