"""A fresh PostgreSQL database with the service's schema, for the wide runs that drive the real pipeline
(benchmarks/privacy38_wide.py, hostile36_wide_run.py).

Why: each such run needs the same set-up and the same tear-down (pipelines stopped, pool closed, database
dropped even when a draw raises); one context manager keeps them from drifting apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import services
from privacy_pipeline import open_store


@contextmanager
def pipeline_store() -> Iterator[tuple[asyncio.AbstractEventLoop, Any, Any, dict]]:
    """(event loop, migrated pool, loaded partitions, a dict for the pipelines the checks start) on a database
    made for the run; afterwards every pipeline in the dict is stopped, the pool closed and the database dropped."""
    db, dsn = services.create_database(services.PG_DSN)
    loop = asyncio.new_event_loop()
    try:
        pool, parts = loop.run_until_complete(open_store(dsn))
        pipelines: dict = {}
        try:
            yield loop, pool, parts, pipelines
        finally:
            for p in pipelines.values():
                loop.run_until_complete(p.stop())
            loop.run_until_complete(pool.close())
    finally:
        loop.close()
        services.drop_database(db, services.PG_DSN)
