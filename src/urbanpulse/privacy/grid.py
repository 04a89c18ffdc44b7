"""Location precision of a data class: rounding to decimal degrees, or geohash cells.

A geohash of length ``p`` splits the globe into a regular grid: ``5p`` bits, of which
``ceil(5p/2)`` halve the longitude range and ``floor(5p/2)`` the latitude range, so its cells are
``360 / 2**lon_bits`` by ``180 / 2**lat_bits`` degrees. Keeping a position at geohash precision
therefore means snapping it to the centre of its cell: no string encoding, vectorised with numpy on
the hot path and the same arithmetic in SQL for the job that coarsens stored positions with age
(privacy/retention.py). Rounding to ``d`` decimals snaps to multiples of ``10**-d``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """A precision positions are snapped to: ``kind`` is ``decimals`` or ``geohash``."""

    kind: str
    level: int

    @staticmethod
    def of(decimals: int | None, geohash: int | None) -> Grid:
        """The grid of a ``decimals`` or ``geohash`` setting (exactly one is set)."""
        return Grid("decimals", decimals) if decimals is not None else Grid("geohash", int(geohash))  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.level} decimals" if self.kind == "decimals" else f"geohash length {self.level}"

    @property
    def bits(self) -> tuple[int, int]:
        """Geohash only: (latitude bits, longitude bits)."""
        total = 5 * self.level
        return total // 2, (total + 1) // 2

    @property
    def steps(self) -> tuple[float, float]:
        """Cell size in degrees: (latitude, longitude)."""
        if self.kind == "decimals":
            step = 10.0 ** -self.level
            return step, step
        lat_bits, lon_bits = self.bits
        return 180.0 / 2 ** lat_bits, 360.0 / 2 ** lon_bits

    def coarser_or_equal(self, other: Grid) -> bool:
        """Whether this grid's cells are at least as large as ``other``'s in both directions."""
        (a, b), (c, d) = self.steps, other.steps
        return a >= c * (1 - 1e-12) and b >= d * (1 - 1e-12)

    def snap(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions snapped to this grid (NaN stays NaN), vectorised; idempotent."""
        if self.kind == "decimals":
            return np.round(lat, self.level), np.round(lon, self.level)
        lat_bits, lon_bits = self.bits
        lat_step, lon_step = self.steps
        with np.errstate(invalid="ignore"):
            i = np.clip(np.floor((lat + 90.0) / lat_step), 0, 2 ** lat_bits - 1)
            j = np.clip(np.floor((lon + 180.0) / lon_step), 0, 2 ** lon_bits - 1)
        return (i + 0.5) * lat_step - 90.0, (j + 0.5) * lon_step - 180.0

    def sql(self, column: str, axis: str) -> str:
        """SQL for ``column`` (``lat`` or ``lon`` per ``axis``) snapped to this grid: the same
        arithmetic as :meth:`snap` (rounding half away from zero instead of numpy's half to even,
        which only differs on exact ties and is equally within half a step)."""
        if self.kind == "decimals":
            return f"round({column}::numeric, {self.level})::float8"
        lat_bits, lon_bits = self.bits
        lat_step, lon_step = self.steps
        step, offset, cells = (lat_step, 90.0, 2 ** lat_bits) if axis == "lat" else (lon_step, 180.0, 2 ** lon_bits)
        return (f"((least(greatest(floor(({column} + {offset!r}) / {step!r}), 0), {cells - 1}) + 0.5) * {step!r}"
                f" - {offset!r})")

    def cell_ids(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Geohash only: an int64 id of each position's cell (row-major), for grouping."""
        lat_bits, lon_bits = self.bits
        lat_step, lon_step = self.steps
        i = np.clip(np.floor((lat + 90.0) / lat_step), 0, 2 ** lat_bits - 1).astype(np.int64)
        j = np.clip(np.floor((lon + 180.0) / lon_step), 0, 2 ** lon_bits - 1).astype(np.int64)
        return (i << lon_bits) | j


_BASE32 = "0123456789bcdefghjkmnpqrstuvwxyz"


def geohash_of(lat: float, lon: float, length: int) -> str:
    """The geohash string of a position (for labelling open aggregate cells)."""
    lat_lo, lat_hi, lon_lo, lon_hi = -90.0, 90.0, -180.0, 180.0
    bits: list[int] = []
    even = True
    while len(bits) < 5 * length:
        if even:
            mid = (lon_lo + lon_hi) / 2
            bits.append(1 if lon >= mid else 0)
            lon_lo, lon_hi = (mid, lon_hi) if lon >= mid else (lon_lo, mid)
        else:
            mid = (lat_lo + lat_hi) / 2
            bits.append(1 if lat >= mid else 0)
            lat_lo, lat_hi = (mid, lat_hi) if lat >= mid else (lat_lo, mid)
        even = not even
    return "".join(_BASE32[int("".join(map(str, bits[k:k + 5])), 2)] for k in range(0, len(bits), 5))
