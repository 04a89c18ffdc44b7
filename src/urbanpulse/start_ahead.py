"""What `urbanpulse run` begins before the rest of the service is even imported.

A start spends most of its own time importing (pydantic models, numpy, the pipeline, the
analytics; about 0.6 s on an idle 2-core machine) and then waits on the network: a Kafka
consumer-group join is mostly the broker holding the JoinGroup answer (on Tansu half the
session timeout), migrations and the pool are round trips to PostgreSQL. Done one after the
other, a new group's first reading was stored about 2.1 s after spawn with a 2 s session.
:class:`StartAhead` overlaps them: as soon as the configuration is read, the sources are built
and start connecting (MQTT connects and subscribes, Kafka connects and joins its group, or with
``assignment: manual`` takes its partitions) and the database is migrated, on the event loop,
while the service's modules are imported on a thread (:func:`urbanpulse.runner.run_service`).

What a source does ahead is connecting only: **no message is taken or acknowledged** before the
pipeline exists. A Kafka consumer's client may prefetch records into its own buffer once it has
partitions (aiokafka does), and an MQTT broker may deliver into the source's bounded buffer, but
nothing is handed to the pipeline and nothing is committed or PUBACKed until
:meth:`~urbanpulse.service.IngestService.start` has built the pipeline and the source's ``run``
takes over. If the start fails (the database unreachable, a bad format plugin),
:meth:`StartAhead.abandon` closes those connections without a commit: the broker redelivers
everything to the next start, as it would have without the head start.

This module imports only what that needs (no pipeline, analytics or API), so the sources start
connecting early.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import asyncpg

from urbanpulse.config import Settings
from urbanpulse.errors import StorageUnavailable
from urbanpulse.metrics import IngestMetrics
from urbanpulse.source_plugins import build_sources
from urbanpulse.storage.migrations import StorageMode, migrate
from urbanpulse.storage.timescale import configured_policies

log = logging.getLogger(__name__)


# Refusals that waiting does not change: the login (role, password, pg_hba.conf) or the database name is wrong.
REFUSED_FOR_GOOD = (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidCatalogNameError)


def refused_for_good_message(exc: asyncpg.PostgresError) -> str:
    """What to fix when the server refused the connection for a reason retrying cannot change."""
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return (f"cannot connect to the database ({exc}): create it (e.g. `createdb` with the same host, port "
                f"and user) or fix the database name in database.dsn (or URBANPULSE_DATABASE__DSN)")
    return (f"the database server refused the login ({exc}): fix the user or password in database.dsn "
            f"(or URBANPULSE_DATABASE__DSN), or the server's pg_hba.conf")


async def connect_with_retry(dsn: str, timeout_s: float, attempts: int = 10) -> asyncpg.Connection:
    """One connection, retried with backoff so a database that is still starting is waited for;
    a refused login or a database that does not exist fails at once (waiting would not help)."""
    delay = 0.25
    for attempt in range(attempts):
        try:
            return await asyncpg.connect(dsn, timeout=timeout_s)
        except REFUSED_FOR_GOOD as exc:
            raise StorageUnavailable(refused_for_good_message(exc)) from exc
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
            if attempt == attempts - 1:
                raise StorageUnavailable(
                    f"cannot connect to the database ({exc}); check database.dsn "
                    f"(or URBANPULSE_DATABASE__DSN) and that the server is running") from exc
            log.warning("database not reachable yet (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)
    raise AssertionError("unreachable")


def resolve_dsn(settings: Settings) -> tuple[str, object | None]:
    """The configured DSN, or an embedded PostgreSQL started in the configured data dir."""
    if settings.database.dsn:
        return settings.database.dsn, None
    from urbanpulse.embedded_db import EmbeddedPostgres

    server = EmbeddedPostgres(Path(settings.database.embedded_data_dir))
    dsn = server.start()
    log.info("no database.dsn configured: started embedded PostgreSQL in %s", settings.database.embedded_data_dir)
    return dsn, server


async def migrated_database(settings: Settings) -> tuple[str, object | None, StorageMode]:
    """(DSN, the embedded server if one was started, storage mode) once the schema is up to date."""
    dsn, embedded = await asyncio.to_thread(resolve_dsn, settings)
    try:
        conn = await connect_with_retry(dsn, settings.database.connect_timeout_s)
        try:
            # on TimescaleDB the policies are applied under the migration lock too
            mode = await migrate(conn, settings.database.storage_mode, configured_policies(settings.database))
        finally:
            await conn.close()
    except BaseException:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)  # type: ignore[attr-defined]
        raise
    return dsn, embedded, mode


def process_age_s() -> float | None:
    """Seconds since this process was spawned (Linux: /proc), for the start-up log line; None elsewhere."""
    try:
        import os

        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        started_ticks = int(fields[19])  # field 22 of stat(5), counted after the command name
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def configured_catalogue(settings: Settings) -> Any:  # noqa: ANN401 - a MetricCatalogue
    """The metric catalogue the configuration names (``validation.catalogue`` plus ``validation.metrics``)."""
    from urbanpulse.quality.catalogue import MetricCatalogue

    v = settings.validation
    return MetricCatalogue.load(v.catalogue, v.metrics)


def configured_formats(settings: Settings, catalogue: Any = None) -> Any:  # noqa: ANN401 - a FormatRouter
    """The configured formats' router, each format built with its validated options: ConfigError or
    PluginError (naming the field) on a mistake, raised before any source or database connects.
    ``catalogue``: the :func:`configured_catalogue` already read (None: read it here)."""
    from urbanpulse.formats.base import DecodeLimits
    from urbanpulse.formats.router import build_router

    v = settings.validation
    return build_router(settings, DecodeLimits(v.max_payload_bytes, v.max_json_depth),
                        catalogue if catalogue is not None else configured_catalogue(settings))


class StartAhead:
    """The sources' connections and the migrations, begun before the service is imported.

    :meth:`begin` needs a running event loop; the service then takes :attr:`metrics`,
    :attr:`sources` and :meth:`database`'s result over (``IngestService(settings, ahead=...)``).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics: IngestMetrics | None = None
        self.sources: list[Any] = []
        self._database: asyncio.Task[tuple[str, object | None, StorageMode]] | None = None
        self._taken = False  # the service took the database (and an embedded server) over
        #: the configured formats, built (their options validated) before anything connects
        self.fmt: Any = None
        #: the metric catalogue the formats and the validator share (read once per start)
        self.catalogue: Any = None

    def begin(self) -> None:
        """Build the configured formats and sources (a bad format option or source stops the start
        here, before anything connects, as before the start overlapped), let each source that can
        start connecting (``start_early()``), and start migrating the database."""
        self.catalogue = configured_catalogue(self.settings)
        self.fmt = configured_formats(self.settings, self.catalogue)
        self.metrics = IngestMetrics()
        self.sources = build_sources(self.settings, self.metrics)  # by entry-point name; bad ones stop start-up
        for src in self.sources:
            early = getattr(src, "start_early", None)
            if callable(early):
                early()
        self._database = asyncio.create_task(migrated_database(self.settings), name="migrate")
        age = process_age_s()
        log.info("sources %s connecting and the database migrating%s, while the service's modules load",
                 ", ".join(getattr(s, "name", "?") for s in self.sources) or "(none)",
                 f" {age:.2f} s after the process started" if age is not None else "")

    async def database(self) -> tuple[str, object | None, StorageMode]:
        """(DSN, embedded server or None, storage mode), waiting for the migrations begun ahead."""
        if self._database is None:
            raise RuntimeError("StartAhead.begin() must be called first")
        result = await asyncio.shield(self._database)
        self._taken = True
        return result

    async def abandon(self) -> None:
        """The start failed: close what was opened ahead, acknowledging nothing (idempotent)."""
        for src in self.sources:
            close = getattr(src, "abandon_early", None)
            if callable(close):
                try:
                    await close()
                except Exception as exc:  # noqa: BLE001 - closing after a failed start: log, go on
                    log.warning("closing source %s after the failed start: %s", getattr(src, "name", src), exc)
        task, self._database = self._database, None
        if task is not None:
            if not task.done():
                task.cancel()
            try:
                _, embedded, _ = await task
            except BaseException:  # noqa: BLE001 - the failure itself is reported by the caller
                return
            if embedded is not None and not self._taken:
                await asyncio.to_thread(embedded.stop)  # type: ignore[attr-defined]
