"""Window configuration (the ``windows:`` section of the config file).

Defaults and why:

* ``size_s: 60`` - one-minute tumbling windows match the ``rollup_1m`` table, so a closed
  window and its rollup row describe the same minute.
* ``allowed_lateness_s: 60`` - a reading may trail its source's newest event time by one
  window before it is flagged late. That covers device clock skew (NTP'd devices: well under
  a second), batching (200 ms) and short MQTT reconnects that flush a few buffered readings,
  while a window still closes (and alert auto-resolve moves on) at most two minutes after it
  started. Longer outages produce late readings, which are stored, counted and flagged, and
  still update their rollups; only the in-memory window ignores them.
* ``evict_after_s: 3600`` - a series silent for an hour gives its slot back. Its windows were
  closed by wall clock long before (after ``size + lateness``), so only the slot is freed.
* ``max_series: 200000`` - memory bound; about 110 bytes of window state per series
  (``WindowState.nbytes_per_slot``), so the bound is ~20 MB. Beyond it the least recently
  seen series are evicted first (see ``WindowState.least_recently_seen``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class WindowSettings(BaseModel):
    """Tumbling window sizes, allowed lateness, idle close and eviction."""

    model_config = ConfigDict(extra="forbid")

    size_s: float = Field(60.0, ge=1.0, le=86400.0, description="tumbling window size for metrics not in `sizes`")
    sizes: dict[str, float] = Field(default_factory=dict,
                                    description="per-metric window size in seconds, e.g. {rain: 3600}")
    allowed_lateness_s: float = Field(60.0, ge=0.0, le=86400.0,
                                      description="a reading older than its source's watermark minus this is late")
    evict_after_s: float = Field(3600.0, gt=0.0, description="series silent this long (wall clock) are evicted")
    max_series: int = Field(200_000, ge=1, description="series held in memory; least recently seen evicted beyond")
    rollups: bool | None = Field(None, description="older name of database.rollups.enabled (set that one)")

    @model_validator(mode="after")
    def _check(self) -> WindowSettings:
        bad = {m: s for m, s in self.sizes.items() if not 1.0 <= s <= 86400.0}
        if bad:
            raise ValueError(f"window sizes must be between 1 and 86400 seconds: {bad}")
        longest = max([self.size_s, *self.sizes.values()]) + self.allowed_lateness_s
        if self.evict_after_s < longest:
            raise ValueError(f"evict_after_s ({self.evict_after_s}) must be at least the longest window plus the "
                             f"allowed lateness ({longest}), or open windows would be evicted before they close")
        return self

    def size_us(self, metric: str) -> int:
        """Window size of ``metric`` in microseconds."""
        return int(round(self.sizes.get(metric, self.size_s) * 1_000_000))
