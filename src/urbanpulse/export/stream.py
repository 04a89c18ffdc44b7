"""One export as a stream of bytes: query -> record batches -> file format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from urbanpulse.export.formats import check_format
from urbanpulse.export.source import ExportInfo, record_batches, schema
from urbanpulse.export.writers import WRITERS, FileWriter
from urbanpulse.query.run import HistoryRunner
from urbanpulse.query.spec import HistoryQuery


@dataclass
class Export:
    """A prepared export: its description, the writer (``writer.rows`` counts rows sent) and its bytes."""

    info: ExportInfo
    format: str
    writer: FileWriter
    chunks: AsyncIterator[bytes]


async def open_export(runner: HistoryRunner, q: HistoryQuery, fmt: str | None, chunk_rows: int = 65_536,
                      use_copy: bool = True, quality: bool = False) -> Export:
    """Prepare the export (query errors raise here, before any byte is sent) and return its byte stream."""
    fmt = check_format(fmt)
    info, batches = await record_batches(runner, q, chunk_rows, use_copy, quality)
    writer = WRITERS[fmt](info, schema(info))

    async def body() -> AsyncIterator[bytes]:
        first = writer.begin()
        if first:
            yield first
        async for b in batches:
            # in a worker thread: Arrow's CSV and Parquet encoders release the GIL, so the file
            # is built on one core while the event loop reads the next rows from PostgreSQL
            data = await asyncio.to_thread(writer.batch, b)
            if data:
                yield data
        last = writer.end()
        if last:
            yield last

    return Export(info, fmt, writer, body())
