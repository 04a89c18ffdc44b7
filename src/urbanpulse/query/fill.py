"""Gap filling: every bucket of the range for every selected series, empty ones filled.

Works on a stream of stored bucket rows ordered by (series, bucket), chunk by chunk, so the
same code serves a page and a constant-memory export. An empty bucket has count 0 and is
marked ``filled``; its other aggregates are

* ``null``: None;
* ``previous``: the values of the series' previous non-empty bucket (None before the first);
* ``linear``: per aggregate, interpolated in time between the previous and the next non-empty
  bucket of the series, at the bucket starts; None before the first and after the last one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

#: (series_id, bucket start us, values, filled, previous non-empty bucket before this row)
Out = tuple[int, int, tuple, bool, "Prev | None"]


class Grid:
    """Bucket starts (us) of the range: arithmetic for fixed widths (no list of a year of minutes),
    a list for calendar buckets."""

    def __init__(self, starts: Sequence[int] | None = None, first: int = 0, step: int = 0, n: int = 0) -> None:
        self.starts = list(starts) if starts is not None else None
        self.first, self.step = first, step
        self.n = len(self.starts) if self.starts is not None else n
        self._pos = {b: i for i, b in enumerate(self.starts)} if self.starts is not None else None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return self.starts[i] if self.starts is not None else self.first + i * self.step

    def index(self, b: int) -> int:
        """Position of bucket start ``b``."""
        return self._pos[b] if self._pos is not None else (b - self.first) // self.step

    def first_at_or_after(self, b: int) -> int:
        """Position of the first bucket starting at or after ``b`` (``len`` if none)."""
        if self.starts is not None:
            return next((i for i, x in enumerate(self.starts) if x >= b), self.n)
        return min(self.n, max(0, -((self.first - b) // self.step)))


@dataclass(frozen=True, slots=True)
class Prev:
    """The last non-empty bucket of the current series (what ``previous``/``linear`` fill from)."""

    bucket_us: int
    values: tuple


class GapFiller:
    """Turns stored rows into the full bucket grid, from a resume position on."""

    def __init__(self, series_ids: Sequence[int], grid_us: Grid | Sequence[int], columns: Sequence[str], fill: str,
                 start_sid: int = -1, start_bucket_us: int | None = None, prev: Prev | None = None) -> None:
        self.series = [s for s in series_ids if s >= start_sid]
        self.grid = grid_us if isinstance(grid_us, Grid) else Grid(grid_us)
        self.columns = list(columns)
        self.fill = fill
        self.si = 0
        self.gi = 0
        if self.series and self.series[0] == start_sid and start_bucket_us is not None:
            self.gi = self.grid.first_at_or_after(start_bucket_us)
        self.prev = prev if self.series and self.series[0] == start_sid else None

    def _empty(self, sid: int, b: int, nxt: tuple[int, tuple] | None) -> Out:
        n = len(self.columns)
        if self.fill == "previous" and self.prev is not None:
            vals = list(self.prev.values)
        elif self.fill == "linear" and self.prev is not None and nxt is not None:
            (t0, v0), (t1, v1) = (self.prev.bucket_us, self.prev.values), nxt
            w = (b - t0) / (t1 - t0)
            vals = [None if a is None or c is None else a + (c - a) * w for a, c in zip(v0, v1)]
        else:
            vals = [None] * n
        for i, name in enumerate(self.columns):
            if name == "count":
                vals[i] = 0
        return (sid, b, tuple(vals), True, self.prev)

    def _gaps_until(self, sid: int, b: int | None, nxt: tuple[int, tuple] | None) -> Iterator[Out]:
        """Empty buckets from the position up to (sid, b) exclusive; b None: to the end of sid's grid."""
        while self.si < len(self.series) and self.series[self.si] < sid:
            s = self.series[self.si]
            while self.gi < len(self.grid):
                yield self._empty(s, self.grid[self.gi], None)
                self.gi += 1
            self.si += 1
            self.gi = 0
            self.prev = None
        if self.si >= len(self.series) or self.series[self.si] != sid:
            return
        stop = len(self.grid) if b is None else self.grid.index(b)
        while self.gi < stop:
            yield self._empty(sid, self.grid[self.gi], nxt)
            self.gi += 1

    def feed(self, rows: Iterable[tuple[int, int, tuple]]) -> Iterator[Out]:
        """Rows (series_id, bucket us, values) in order -> every bucket up to and including each row."""
        for sid, b, vals in rows:
            yield from self._gaps_until(sid, b, (b, vals))
            yield (sid, b, vals, False, self.prev)
            self.prev = Prev(b, vals)
            self.gi += 1

    def finish(self) -> Iterator[Out]:
        """The empty buckets after the last stored row (call only when the rows are exhausted)."""
        if self.si < len(self.series):
            yield from self._gaps_until(self.series[self.si], None, None)
            self.si += 1
            self.gi = 0
            self.prev = None
            yield from self._gaps_until(1 << 62, None, None)
