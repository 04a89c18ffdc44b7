"""Schema of the rollup tables (migration 3).

``rollup_1m`` and ``rollup_1h`` hold, per (series, bucket start), the mergeable summary
(count, mean, m2 = sum of squared deviations, min, max, first/last value with their event
times) that storage/rollups.py maintains in each batch's transaction. ``*_stats`` views add
the sample standard deviation, ``sqrt(m2 / (count - 1))``, NULL for a single reading.

``fillfactor = 70``: most merges update a row the previous batch created (the current minute
and hour of every active series); free room on the page lets PostgreSQL update it in place
(HOT, no new index entry). Measured: the merge took about half the time.

TimescaleDB mode: both are hypertables on ``bucket`` maintained by the same merge; the hourly
table is deliberately not a continuous aggregate (docs/rollups.md says why).
"""

_COLUMNS = """
    series_id int4 NOT NULL,
    bucket    timestamptz NOT NULL,
    count     int8 NOT NULL,
    mean      float8 NOT NULL,
    m2        float8 NOT NULL,
    min       float8 NOT NULL,
    max       float8 NOT NULL,
    first_ts  timestamptz NOT NULL,
    first     float8 NOT NULL,
    last_ts   timestamptz NOT NULL,
    last      float8 NOT NULL,
    PRIMARY KEY (series_id, bucket)
"""

_VIEWS = """
CREATE VIEW rollup_1m_stats AS
    SELECT series_id, bucket, count, mean,
           CASE WHEN count > 1 THEN sqrt(greatest(m2, 0) / (count - 1)) END AS std,
           min, max, first, last, first_ts, last_ts
    FROM rollup_1m;
CREATE VIEW rollup_1h_stats AS
    SELECT series_id, bucket, count, mean,
           CASE WHEN count > 1 THEN sqrt(greatest(m2, 0) / (count - 1)) END AS std,
           min, max, first, last, first_ts, last_ts
    FROM rollup_1h;
"""

POSTGRES_ROLLUPS = f"""
CREATE TABLE rollup_1m ({_COLUMNS}) WITH (fillfactor = 70);
CREATE TABLE rollup_1h ({_COLUMNS}) WITH (fillfactor = 70);
CREATE INDEX rollup_1m_bucket_brin ON rollup_1m USING brin (bucket);
CREATE INDEX rollup_1h_bucket_brin ON rollup_1h USING brin (bucket);
{_VIEWS}
"""

TIMESCALE_ROLLUPS: str | None = f"""
CREATE TABLE rollup_1m ({_COLUMNS}) WITH (fillfactor = 70);
SELECT create_hypertable('rollup_1m', 'bucket', chunk_time_interval => INTERVAL '7 days');
CREATE TABLE rollup_1h ({_COLUMNS}) WITH (fillfactor = 70);
SELECT create_hypertable('rollup_1h', 'bucket', chunk_time_interval => INTERVAL '90 days');
{_VIEWS}
"""


# -- migration 40: the daily level and the per-series level decisions ----------------------------

_DAILY_VIEW = """
CREATE VIEW rollup_1d_stats AS
    SELECT series_id, bucket, count, mean,
           CASE WHEN count > 1 THEN sqrt(greatest(m2, 0) / (count - 1)) END AS std,
           min, max, first, last, first_ts, last_ts
    FROM rollup_1d;
"""

#: ``rollup_series``: per series, the finest rollup level stored (bucket width in microseconds;
#: 2^62 = none) and the interval it was decided from. A series without a row has every level.
#: Levels only ever get coarser (storage/rollups.py), so every stored level of a series holds
#: every bucket of it: a query reads the finest level at least as fine as it needs that exists
#: for the series, or the readings.
_DECISIONS = """
CREATE TABLE rollup_series (
    series_id  int4 PRIMARY KEY,
    finest_us  int8 NOT NULL,
    interval_s float8,
    source     text NOT NULL,              -- 'learned' or 'configured'
    decided_at timestamptz NOT NULL DEFAULT now()
);
"""

POSTGRES_ROLLUP_1D = f"""
CREATE TABLE rollup_1d ({_COLUMNS}) WITH (fillfactor = 70);
CREATE INDEX rollup_1d_bucket_brin ON rollup_1d USING brin (bucket);
{_DAILY_VIEW}
{_DECISIONS}
"""

TIMESCALE_ROLLUP_1D = f"""
CREATE TABLE rollup_1d ({_COLUMNS}) WITH (fillfactor = 70);
SELECT create_hypertable('rollup_1d', 'bucket', chunk_time_interval => INTERVAL '365 days');
{_DAILY_VIEW}
{_DECISIONS}
"""

# -- migration 41: rollups compressed like readings (TimescaleDB) -------------------------------

#: segment by series, order by bucket: the layout of readings (series_id / ts), so a series'
#: range query reads one segment per chunk; the compression policy is storage/timescale.py's
TIMESCALE_ROLLUP_COMPRESSION = "\n".join(
    f"ALTER TABLE {t} SET (timescaledb.compress, timescaledb.compress_segmentby = 'series_id', "
    f"timescaledb.compress_orderby = 'bucket');" for t in ("rollup_1m", "rollup_1h", "rollup_1d"))
POSTGRES_ROLLUP_COMPRESSION = "SELECT 1;  -- nothing to do without TimescaleDB"

# -- migration 42: deferred rollups' durable marks ----------------------------------------------

#: ``rollup_pending``: per writer (a random id, alive while it holds
#: ``pg_advisory_lock(LIVE_NS, writer_id)``), the minutes holding committed readings whose rollup
#: share is still in its memory; written in the batch transaction, deleted by the flush that
#: merges them. Rows of a writer that is gone name the buckets to rebuild from the readings
#: (storage/rollup_buffer.py, storage/rollup_rebuild.py). A plain table in both modes: a few rows
#: per writer and minute, short-lived.
ROLLUP_PENDING = """
CREATE TABLE rollup_pending (
    writer_id int8 NOT NULL,
    gen       int8 NOT NULL,
    bucket    timestamptz NOT NULL,
    PRIMARY KEY (writer_id, bucket, gen)
);
CREATE INDEX rollup_pending_bucket ON rollup_pending (bucket);
"""
