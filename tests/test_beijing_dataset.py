"""The Beijing replay source reads the real files faithfully: rows, NA counts, time zone, JSON."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson
import pytest

from urbanpulse.datasets import DATASETS_ENV, DatasetNotFoundError
from urbanpulse.datasets.beijing import (
    METRICS,
    StationData,
    expected_counts,
    iter_payloads,
    read_station,
    station_files,
)

try:
    FILES = station_files()
except DatasetNotFoundError as err:  # pragma: no cover - depends on the checkout
    if os.environ.get("CI", "").lower() == "true":  # CI always has ../shared/datasets: missing is a failure
        raise
    pytest.skip(f"Beijing dataset not available: {err}", allow_module_level=True)

# Missing (`NA`) cells per column over all 12 files, as measured in the dataset's README.
README_NA = {"co": 20_701, "o3": 13_277, "no2": 12_116, "so2": 9_021, "pm2_5": 8_739, "pm10": 6_449}
ROWS_PER_STATION = 35_064


@pytest.fixture(scope="module")
def stations() -> list[StationData]:
    return [read_station(p) for p in FILES]


@pytest.fixture(scope="module")
def dongsi(stations: list[StationData]) -> StationData:
    (station,) = [s for s in stations if s.sensor_id == "beijing-dongsi"]
    return station


def test_twelve_stations_each_with_every_hour(stations: list[StationData]) -> None:
    assert len(FILES) == 12
    assert len({s.sensor_id for s in stations}) == 12
    for s in stations:
        assert s.sensor_id.startswith("beijing-") and s.sensor_id == s.sensor_id.lower()
        assert len(s) == ROWS_PER_STATION
        assert s.ts_ms.dtype == np.int64
        assert (np.diff(s.ts_ms) == 3_600_000).all(), "hourly, no gaps or duplicates"
        assert all(v.dtype == np.float64 and v.shape == s.ts_ms.shape for v in s.values.values())


def test_dongsi_rows_and_first_hour_in_utc(dongsi: StationData) -> None:
    assert len(dongsi) == ROWS_PER_STATION
    # 2013-03-01 00:00 Beijing time (UTC+8) is 2013-02-28 16:00 UTC.
    first = datetime(2013, 2, 28, 16, tzinfo=timezone.utc)
    assert int(dongsi.ts_ms[0]) == int(first.timestamp() * 1000)
    last = datetime(2017, 2, 28, 15, tzinfo=timezone.utc)  # 2017-02-28 23:00 local
    assert int(dongsi.ts_ms[-1]) == int(last.timestamp() * 1000)
    # First data row: 9,9,3,17,300,89,-0.5,1024.5,-21.4,0,"NNW",5.7
    assert {m: float(v[0]) for m, v in dongsi.values.items()} == {
        "pm2_5": 9.0, "pm10": 9.0, "so2": 3.0, "no2": 17.0, "co": 300.0, "o3": 89.0,
        "temperature": -0.5, "pressure": 1024.5, "dew_point": -21.4, "rain": 0.0,
        "wind_speed": 5.7,
    }  # fmt: skip
    assert dongsi.units["co"] == "ug/m3" and dongsi.units["pressure"] == "hPa"
    assert set(dongsi.units) == {metric for metric, _ in METRICS.values()}


def test_na_counts_over_all_files_match_the_readme(stations: list[StationData]) -> None:
    totals: dict[str, int] = {}
    for s in stations:
        counts = expected_counts(s)
        assert counts["readings"] == ROWS_PER_STATION * len(METRICS)
        assert counts["valid"] + counts["missing_total"] == counts["readings"]
        for metric, n in counts["missing"].items():
            totals[metric] = totals.get(metric, 0) + n
    assert {m: totals[m] for m in README_NA} == README_NA
    for weather in ("temperature", "pressure", "dew_point", "rain", "wind_speed"):
        assert 300 <= totals[weather] <= 450  # README: "about 400 each"


def test_payloads_round_trip_with_null_for_na(dongsi: StationData) -> None:
    # Decode while streaming: holding 385,704 orjson buffers in a list is several times slower.
    decoded = [orjson.loads(p) for p in iter_payloads(dongsi)]
    counts = expected_counts(dongsi)
    assert len(decoded) == counts["readings"]
    first = decoded[0]
    assert first == {
        "sensor_id": "beijing-dongsi", "metric": "pm2_5", "ts": 1_362_067_200_000,
        "value": 9.0, "unit": "ug/m3",
    }  # fmt: skip
    # Time order, all metrics of an hour together.
    hour0 = decoded[: len(METRICS)]
    assert {r["ts"] for r in hour0} == {1_362_067_200_000}
    assert [r["metric"] for r in hour0] == [metric for metric, _ in METRICS.values()]
    # Every message decodes back to the arrays: same order, same values, null exactly at NA.
    metrics = dongsi.metrics
    expected_values = np.column_stack([dongsi.values[m] for m in metrics]).ravel()
    got_values = np.array([np.nan if r["value"] is None else r["value"] for r in decoded])
    np.testing.assert_array_equal(got_values, expected_values)  # NaN == NaN here
    assert sum(r["value"] is None for r in decoded) == counts["missing_total"]
    assert [r["ts"] for r in decoded] == np.repeat(dongsi.ts_ms, len(metrics)).tolist()
    assert [r["metric"] for r in decoded] == metrics * len(dongsi)


def test_batched_payloads_are_arrays_of_up_to_n(dongsi: StationData) -> None:
    messages = list(iter_payloads(dongsi, readings_per_message=500, metrics=["pm2_5", "co"]))
    batches = [orjson.loads(m) for m in messages]
    assert all(isinstance(b, list) and 1 <= len(b) <= 500 for b in batches)
    flat = [r for b in batches for r in b]
    assert len(flat) == 2 * ROWS_PER_STATION
    assert {r["metric"] for r in flat} == {"pm2_5", "co"}
    assert sum(r["value"] is None for r in flat) == expected_counts(dongsi, ["pm2_5", "co"])[
        "missing_total"
    ]


def test_unknown_metric_and_bad_batch_size_are_rejected(dongsi: StationData) -> None:
    with pytest.raises(ValueError, match="Unknown metrics"):
        next(iter_payloads(dongsi, metrics=["pm25"]))
    with pytest.raises(ValueError, match="at least 1"):
        next(iter_payloads(dongsi, readings_per_message=0))


def test_missing_dataset_folder_names_the_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATASETS_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DatasetNotFoundError, match=DATASETS_ENV):
        station_files()
    empty = tmp_path / "datasets"
    empty.mkdir()
    monkeypatch.setenv(DATASETS_ENV, str(empty))
    with pytest.raises(DatasetNotFoundError, match="URBANPULSE_DATASETS"):
        station_files()
