"""The ``live:`` config section: the operations page at ``/`` and its stream of latest readings."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: band edges per metric for the map's colours (4 edges -> 5 bands: low .. very high). Air quality
#: edges follow the US EPA / WHO breakpoints in ug/m3; a metric not listed is split evenly over
#: the catalogue's physical range, which is coarse: list the metrics a city watches.
DEFAULT_SCALES: dict[str, list[float]] = {
    "pm2_5": [12.0, 35.5, 55.5, 150.5],
    "pm10": [54.0, 154.0, 254.0, 354.0],
    "pm1": [10.0, 25.0, 50.0, 100.0],
    "no2": [40.0, 100.0, 200.0, 400.0],
    "o3": [60.0, 120.0, 180.0, 240.0],
    "so2": [20.0, 80.0, 250.0, 500.0],
    "co": [1000.0, 4000.0, 10000.0, 30000.0],
    "temperature": [0.0, 10.0, 20.0, 30.0],
    "humidity": [20.0, 40.0, 60.0, 80.0],
    "noise_db": [45.0, 55.0, 65.0, 75.0],
    "wind_speed": [2.0, 5.0, 10.0, 17.0],
}


class TileSettings(BaseModel):
    """The map's background tiles. With no ``url`` (the default) the page draws sensors on a
    plain background with a graticule, and it falls back to that when the tiles cannot be loaded
    (an offline control room, a blocked tile server)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, description="tile URL template with {z} {x} {y} (and optionally {s}), e.g. "
                                              "https://tile.openstreetmap.org/{z}/{x}/{y}.png; null: no tiles")
    attribution: str = Field("", max_length=500, description="shown in the map corner, e.g. '(c) OpenStreetMap "
                                                             "contributors' (HTML is shown as text)")
    max_zoom: int = Field(19, ge=1, le=24)
    subdomains: str = Field("abc", description="letters {s} takes")

    @field_validator("url")
    @classmethod
    def _template(cls, url: str | None) -> str | None:
        if url in (None, ""):
            return None
        if not all(p in url for p in ("{z}", "{x}", "{y}")) or not url.startswith(("http://", "https://", "/")):
            raise ValueError("must be an http(s) URL template holding {z}, {x} and {y}, e.g. "
                             "https://tile.openstreetmap.org/{z}/{x}/{y}.png")
        return url


class LiveSettings(BaseModel):
    """The live operations page (docs/live-page.md)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="serve the operations page at / (its data still needs keys)")
    tiles: TileSettings = TileSettings()
    interval_s: float = Field(0.5, ge=0.05, le=60, description="the latest readings go out to open pages at most "
                                                               "this often, coalesced per series")
    poll_s: float = Field(10.0, ge=1, le=3600, description="without stream analytics (detection off), pages get "
                                                          "a fresh snapshot from the database this often instead")
    keepalive_s: float = Field(15.0, gt=0, le=300, description="a comment on an idle stream this often (proxies "
                                                               "close silent connections); the key is checked again")
    queue_frames: int = Field(240, ge=4, le=100_000, description="frames a page may fall behind before its stream "
                                                                 "is closed (it reconnects with a fresh snapshot)")
    scales: dict[str, list[float]] = Field(default_factory=lambda: dict(DEFAULT_SCALES),
                                           description="colour band edges per metric (ascending); merged over "
                                                       "the defaults")

    @field_validator("scales")
    @classmethod
    def _ascending(cls, scales: dict[str, list[float]]) -> dict[str, list[float]]:
        for metric, edges in scales.items():
            if not edges or not all(math.isfinite(e) for e in edges) or any(b <= a for a, b in zip(edges, edges[1:])):
                raise ValueError(f"scales.{metric} must be a non-empty ascending list of finite band edges, e.g. "
                                 f"[12, 35.5, 55.5, 150.5]")
        return {**DEFAULT_SCALES, **scales}
