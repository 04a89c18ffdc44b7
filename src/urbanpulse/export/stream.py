"""One export as a stream of bytes: query -> record batches -> file format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
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


async def open_export(runner: HistoryRunner, q: HistoryQuery, fmt: str | None, chunk_rows: int = 32_768,
                      use_copy: bool = True, quality: bool = False) -> Export:
    """Prepare the export (query errors raise here, before any byte is sent) and return its byte stream."""
    fmt = check_format(fmt)
    info, batches = await record_batches(runner, q, chunk_rows, use_copy, quality)
    writer = WRITERS[fmt](info, schema(info))

    async def body() -> AsyncIterator[bytes]:
        # batches are encoded in a thread of the export's own: Arrow's CSV and Parquet encoders
        # release the GIL, so the file is built on one core while the event loop reads the next
        # rows from PostgreSQL. One thread, not the shared pool: Arrow's allocator keeps freed
        # memory per thread, so batches spread over many threads would raise the peak memory.
        loop = asyncio.get_running_loop()
        encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export")
        try:
            first = writer.begin()
            if first:
                yield first
            async for b in batches:
                data = await loop.run_in_executor(encoder, writer.batch, b)
                if data:
                    yield data
            last = writer.end()
            if last:
                yield last
        finally:
            encoder.shutdown(wait=False)
            # at once, not when the garbage collector finds it: a client that went away mid-file
            # must not keep the COPY running and its connections lent
            aclose = getattr(batches, "aclose", None)
            if aclose is not None:
                await aclose()

    return Export(info, fmt, writer, body())
