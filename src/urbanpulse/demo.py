"""``urbanpulse demo``: real Beijing air-quality data through the real pipeline, on any machine.

Without a configured database it starts the embedded PostgreSQL, so the only prerequisite is
``pip install``. The replay runs as fast as storage takes it (four years of hourly data in
seconds) and ends with the accounting a data engineer would check first: every reading sent
is either stored or quarantined with a reason. With ``--serve`` it stays up instead, behind the
full service and its page (:mod:`urbanpulse.demo_serve`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from urbanpulse.config import Settings
from urbanpulse.connectors.replay import ReplaySource
from urbanpulse.datasets import DatasetNotFoundError
from urbanpulse.datasets.beijing import expected_counts, iter_payloads, read_station, station_files
from urbanpulse.service import IngestService


BUNDLED_SAMPLE = Path(__file__).parent / "datasets" / "sample"


def _payloads(stations: list, hours: int | None) -> Iterator[bytes]:
    """One message per station-hour (an array of its eleven readings), hour by hour across the
    stations, as a live city feed would arrive: event time moves forward for all of them
    together, so the source's watermark (and with it late-reading flags, window closing and
    alert auto-resolve) behaves as it would live."""
    feeds = [iter_payloads(d, readings_per_message=len(d.values)) for d in stations]
    if hours is not None:
        feeds = [itertools.islice(f, hours) for f in feeds]
    for hour in itertools.zip_longest(*feeds):
        yield from (m for m in hour if m is not None)


async def analytics_summary(service: IngestService) -> dict[str, object]:
    """Rollup rows and alerts by detector, for the summary (empty when analytics are off)."""
    if service.pool is None or service.analytics is None:
        return {}
    if service.store is not None and service.store.rollup_buffer is not None:
        await service.store.rollup_buffer.flush()  # rollups are merged from memory every second
    async with service.pool.acquire() as conn:
        alerts = {r["detector"]: r["n"] for r in await conn.fetch(
            "SELECT detector, count(*) AS n FROM alerts GROUP BY 1 ORDER BY 2 DESC")}
        rollups = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in ("rollup_1m", "rollup_1h", "rollup_1d")}
        return {"alerts": alerts, "not_analysed": getattr(service.analytics, "load_error", None), **rollups}


async def run_demo(settings: Settings, stations: int = 3, hours: int | None = None,
                   datasets: Path | None = None) -> int:
    """Replay ``stations`` Beijing station files and print what was stored and quarantined."""
    try:
        files = station_files(datasets / "beijing_multisite_air_quality" if datasets else None)[:max(1, stations)]
    except DatasetNotFoundError:
        if datasets is not None:
            raise
        files = station_files(BUNDLED_SAMPLE)
        print(f"dataset folder not found: replaying the bundled sample station ({files[0].name})")
    data = [read_station(f) for f in files]
    expected_missing = 0
    total = 0
    for d in data:
        counts = expected_counts(d)
        frac = 1.0 if hours is None else min(1.0, hours / counts["hours"])
        total += int(counts["readings"] * frac) if hours is None else min(hours, counts["hours"]) * len(d.values)
        if hours is None:
            expected_missing += counts["missing_total"]
    # history from 2013: the "too old" horizon is for live feeds, not for a replay
    settings = settings.model_copy(deep=True)
    settings.validation.max_age_s = None
    settings.api.enabled = False
    bar = tqdm(total=total, unit="readings", desc="replaying", unit_scale=True, leave=True)
    messages_per_hour = len(data[0].values)
    source = ReplaySource(_payloads(data, hours), messages_per_batch=500,
                          progress=lambda sent: bar.update(sent * messages_per_hour - bar.n))
    service = IngestService(settings, [source])
    started = time.perf_counter()
    await service.start()
    print(f"database: {'embedded PostgreSQL' if not settings.database.dsn else settings.database.dsn} "
          f"(storage mode: {service.storage_mode})")
    analysed: dict[str, object] = {}
    try:
        await source.finished.wait()
        analysed = await analytics_summary(service)
    finally:
        await service.stop()
        bar.close()
    seconds = time.perf_counter() - started
    balanced = print_accounting(service, data, expected_missing if hours is None else None, seconds, analysed)
    if not settings.database.dsn:
        print(f"\nThe data stays in {settings.database.embedded_data_dir}; run the demo again to see "
              "redelivered readings stored nothing twice, or `urbanpulse run` to serve it.")
    return balanced


def print_accounting(service: IngestService, data: list, expected_missing: int | None, seconds: float,
                     analysed: dict[str, object]) -> int:
    """The summary both demos end with: what was received, stored, already stored and quarantined
    (by reason), rollups and alerts; returns 0 when every reading is accounted for, else 1."""
    t = service.metrics.tally
    print(f"\nreplayed {len(data)} Beijing station(s): {', '.join(d.sensor_id for d in data)}")
    print(f"  readings received   {t['received']:>10,}  ({t['received'] / max(seconds, 1e-9):,.0f}/s)")
    print(f"  stored              {t['stored']:>10,}")
    print(f"  already stored      {t['duplicates']:>10,}  (re-running the demo stores nothing twice)")
    print(f"  quarantined         {t['quarantined']:>10,}")
    for reason, n in sorted(service.metrics.reasons.items()):
        print(f"    {reason:<20}{n:>10,}")
    if expected_missing is not None:
        print(f"  `NA` cells in the files: {expected_missing:,} (quarantined as missing_value)")
    if analysed:
        by = ", ".join(f"{d} {n:,}" for d, n in analysed["alerts"].items()) or "none"  # type: ignore[union-attr]
        print(f"  rollups             {analysed['rollup_1m']:>10,} one-minute, {analysed['rollup_1h']:,} one-hour and "
              f"{analysed['rollup_1d']:,} one-day rows (hourly stations keep only the daily level)")
        if analysed.get("not_analysed"):  # "0 alerts" would read as "nothing anomalous"
            print(f"  alerts              not analysed: the detectors could not be built "
                  f"({analysed['not_analysed']}); the readings are stored, see the log above")
        else:
            print(f"  alerts              {sum(analysed['alerts'].values()):>10,}  ({by})")  # type: ignore[union-attr]
            print("    (station outages raise `silence`; list them with GET /alerts under `urbanpulse run`)")
    balanced = t["received"] == t["stored"] + t["duplicates"] + t["quarantined"]
    print(f"  received = stored + already stored + quarantined: {'yes' if balanced else 'NO'}", flush=True)
    return 0 if balanced else 1
