"""The ``history:`` configuration section: what one history query or export may cost."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HistorySettings(BaseModel):
    """Limits of ``GET /readings`` and exports; each is answered with a message saying what to narrow."""

    model_config = ConfigDict(extra="forbid")

    max_page_rows: int = Field(10_000, ge=1, description="rows per page at most (limit=)")
    default_page_rows: int = Field(1_000, ge=1, description="rows per page without limit=")
    max_series: int = Field(1_000, ge=1, description="series one selection may match (413 beyond)")
    max_buckets: int = Field(2_000_000, ge=1, description="series x buckets of one query (413 beyond)")
    max_scan_readings: int = Field(50_000_000, ge=1, description="stored readings a raw-path aggregation may "
                                   "read (413 beyond; rollup-path queries are not limited by this)")
    statement_timeout_s: float = Field(30.0, gt=0, description="a page's statement running longer is cancelled (503)")
    export_timeout_s: float = Field(900.0, gt=0, description="an export running longer is cancelled")
    selection_cache_s: float = Field(2.0, ge=0, description="a selection's series and rollup levels are reused this "
                                     "many seconds: a registry change made elsewhere (CLI, another instance), a new "
                                     "series or a new rollup-level decision reaches queries within this time; "
                                     "registry changes through this service's API at once. 0: resolve every request")
