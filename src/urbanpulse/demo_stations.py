"""The replayed Beijing stations as registry entries: where they stand, what they measure, how often.

`urbanpulse demo --serve` registers them before the replay starts, so the map shows each
station at its real position (``datasets/beijing_stations.yaml``, with its source), the
silence detector and the quality figures expect one reading an hour from the registry instead
of learning it, and the open-data scope may show them to visitors without a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from urbanpulse.datasets import DatasetError
from urbanpulse.datasets.beijing import StationData
from urbanpulse.registry.model import DataClass, MetricInfo, SensorIn

STATIONS_FILE = Path(__file__).parent / "datasets" / "beijing_stations.yaml"
#: one reading an hour: the dataset's sampling, and what silence and completeness expect of it
INTERVAL_S = 3600.0
OWNER = "Beijing Municipal Environmental Monitoring Center"
LICENCE = "CC-BY-4.0"


@dataclass(frozen=True)
class StationSite:
    """Where one monitoring site stands (from :data:`STATIONS_FILE`)."""

    station: str
    name_zh: str
    lat: float
    lon: float
    district: str
    kind: str


def load_sites(path: Path = STATIONS_FILE) -> dict[str, StationSite]:
    """Every site in the stations file, by the dataset's station name (e.g. ``Dongsi``)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))["stations"]
        return {name: StationSite(name, str(s["name_zh"]), float(s["lat"]), float(s["lon"]), str(s["district"]),
                                  str(s["kind"])) for name, s in raw.items()}
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise DatasetError(f"cannot read the Beijing station list {path} ({type(exc).__name__}: {exc}); restore it "
                           f"from the urbanpulse package") from exc


def registry_entry(data: StationData, site: StationSite, interval_s: float = INTERVAL_S) -> SensorIn:
    """The registry entry of a replayed station: id as its readings carry it, position, district,
    each metric with its unit and reporting interval (hourly in the dataset; the live clock's
    interval when the demo replays faster, see :mod:`urbanpulse.demo_feed`)."""
    return SensorIn(
        id=data.sensor_id, name=f"{site.station} ({site.name_zh})", type="air-quality",
        description=f"Beijing national air-quality monitoring site ({site.kind}), replayed from the UCI Beijing "
                    f"Multi-Site Air-Quality dataset (Zhang et al. 2017)",
        lat=site.lat, lon=site.lon, area=site.district, tags=["air", "beijing", "demo", site.kind], owner=OWNER,
        data_class=DataClass.OPEN, licence=LICENCE,
        metrics={metric: MetricInfo(unit=data.units[metric], interval_s=interval_s) for metric in data.metrics})


def registry_entries(stations: list[StationData], sites: dict[str, StationSite] | None = None,
                     interval_s: float = INTERVAL_S) -> list[SensorIn]:
    """Registry entries of ``stations``; :class:`DatasetError` naming a station the list lacks."""
    sites = load_sites() if sites is None else sites
    missing = [d.station for d in stations if d.station not in sites]
    if missing:
        raise DatasetError(f"no position for station(s) {missing} in {STATIONS_FILE}; add them there with their "
                           f"source, or replay the dataset's own station files")
    return [registry_entry(d, sites[d.station], interval_s) for d in stations]
