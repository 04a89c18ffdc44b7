"""Run one export in this process and report rows, bytes and peak RSS (for memory tests/benchmarks).

    python tests/export_probe.py DSN FORMAT OUT_PATH key=value ...   -> prints JSON on stdout
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time

import asyncpg
import orjson

from urbanpulse.export.stream import open_export
from urbanpulse.query.run import HistoryRunner
from urbanpulse.query.spec import parse_query


async def main(dsn: str, fmt: str, out: str, params: dict[str, str]) -> dict:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        chunk = int(params.pop("chunk", "32768"))
        quality = params.pop("quality", "false") == "true"
        q = parse_query(params)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        ex = await open_export(HistoryRunner(pool), q, fmt, chunk_rows=chunk, quality=quality)
        size = 0
        with open(out, "wb") as fh:
            async for chunk in ex.chunks:
                fh.write(chunk)
                size += len(chunk)
        seconds = time.perf_counter() - t0
    finally:
        await pool.close()
    return {"rows": ex.writer.rows, "bytes": size, "seconds": seconds, "rows_per_s": ex.writer.rows / seconds,
            "rss_before_kb": rss_before, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


if __name__ == "__main__":
    dsn, fmt, out, *kv = sys.argv[1:]
    result = asyncio.run(main(dsn, fmt, out, dict(p.split("=", 1) for p in kv)))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
