"""Schema of the rollup tables (migration 3). Placeholder until rollups land."""

POSTGRES_ROLLUPS = "SELECT 1;"
TIMESCALE_ROLLUPS: str | None = None
