"""``series_buckets()`` (migration 25): level-aware buckets for SQL clients such as Grafana.

A series keeps only the rollup levels that earn their place (docs/rollups.md): ``rollup_series``
says, per series, the finest level stored, and a series without a row keeps every level. A
dashboard that read ``rollup_1h`` directly would show nothing for a series whose hourly level was
dropped, and reading ``readings`` for a year would scan millions of rows. This function does what
the history API does, in SQL, so any client can use it::

    SELECT bucket, mean, min, max, level
      FROM series_buckets(ARRAY(SELECT id FROM series WHERE sensor_id = 'dongsi' AND metric = 'pm2_5'),
                          now() - interval '7 days', now(), interval '1 hour');

Per series it reads the coarsest stored level whose width divides the wanted width (``1d``,
``1h``, ``1m``), else the raw readings, and aggregates that into buckets of ``p_width`` aligned to
the Unix epoch (as Grafana's ``$__timeGroup`` aligns them). Each bucket overlapping
``[p_from, p_to)`` is returned whole (the span is widened to bucket edges), so the answer does
not depend on which level was read: count, mean, min and max equal an aggregation of the raw
readings (tests/test_grafana_sql.py checks that on generated series). ``level`` says what was read.
"""

from __future__ import annotations

SERIES_BUCKETS_SQL = """
CREATE FUNCTION series_buckets(p_series int4[], p_from timestamptz, p_to timestamptz, p_width interval)
RETURNS TABLE (series_id int4, bucket timestamptz, count int8, mean float8, min float8, max float8, level text)
LANGUAGE sql STABLE AS $$
WITH span AS (
    SELECT date_bin(p_width, p_from, timestamptz 'epoch') AS a,
           CASE WHEN date_bin(p_width, p_to, timestamptz 'epoch') = p_to THEN p_to
                ELSE date_bin(p_width, p_to, timestamptz 'epoch') + p_width END AS b,
           extract(epoch FROM p_width) AS w
), pick AS (
    SELECT s.id,
           CASE WHEN span.w % 86400 = 0 AND coalesce(r.finest_us, 0) <= 86400000000 THEN '1d'
                WHEN span.w % 3600 = 0 AND coalesce(r.finest_us, 0) <= 3600000000 THEN '1h'
                WHEN span.w % 60 = 0 AND coalesce(r.finest_us, 0) <= 60000000 THEN '1m'
                ELSE 'raw' END AS level
      FROM unnest(p_series) AS s(id) CROSS JOIN span
      LEFT JOIN rollup_series r ON r.series_id = s.id
), parts AS (
    SELECT x.series_id, x.bucket AS t, x.count, x.mean, x.min, x.max, p.level
      FROM pick p JOIN rollup_1d x ON x.series_id = p.id CROSS JOIN span
     WHERE p.level = '1d' AND x.bucket >= span.a AND x.bucket < span.b
    UNION ALL
    SELECT x.series_id, x.bucket, x.count, x.mean, x.min, x.max, p.level
      FROM pick p JOIN rollup_1h x ON x.series_id = p.id CROSS JOIN span
     WHERE p.level = '1h' AND x.bucket >= span.a AND x.bucket < span.b
    UNION ALL
    SELECT x.series_id, x.bucket, x.count, x.mean, x.min, x.max, p.level
      FROM pick p JOIN rollup_1m x ON x.series_id = p.id CROSS JOIN span
     WHERE p.level = '1m' AND x.bucket >= span.a AND x.bucket < span.b
    UNION ALL
    SELECT r.series_id, r.ts, 1::int8, r.value, r.value, r.value, p.level
      FROM pick p JOIN readings r ON r.series_id = p.id CROSS JOIN span
     WHERE p.level = 'raw' AND r.ts >= span.a AND r.ts < span.b
)
SELECT series_id, date_bin(p_width, t, timestamptz 'epoch') AS bucket, sum(count)::int8 AS count,
       sum(count * mean) / sum(count) AS mean, min(min) AS min, max(max) AS max, min(level) AS level
  FROM parts
 GROUP BY 1, 2
$$;
COMMENT ON FUNCTION series_buckets(int4[], timestamptz, timestamptz, interval) IS
    'Buckets of p_width (epoch-aligned) over [p_from, p_to) per series, read from the coarsest rollup level the '
    'series keeps that divides p_width, else from readings (docs/grafana.md)';
"""
