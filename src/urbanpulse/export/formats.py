"""Export file formats by name: media types, extensions and the format check.

Apart from the writers so that what needs only the names (the API's route table, the CLI's
options) does not import pyarrow: that costs about 0.3 s and 26 MB at every service start,
for an export that may never be requested (benchmarks/README.md, start-up and memory).
"""

from __future__ import annotations

from urbanpulse.query.errors import QueryError

FORMATS = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}
EXTENSIONS = {"csv": "csv", "ndjson": "ndjson", "parquet": "parquet"}


def check_format(fmt: str | None) -> str:
    """A known format name (csv, ndjson, parquet); csv when not given."""
    f = (fmt or "csv").lower()
    if f not in FORMATS:
        raise QueryError(f"format={fmt!r} is not known; use csv, ndjson or parquet")
    return f
