-- The read-only role Grafana's "urbanpulse database" datasource logs in as (docker-compose.yml runs
-- this in the db-grants service once urbanpulse has migrated the schema; run it again after an
-- upgrade that adds tables). Idempotent. SELECT on what the dashboards read, nothing else:
--   * no API keys, no privacy audit log, no source_suspects;
--   * quarantine without payload, detail and topic (they can hold personal data): reason, source,
--     size and time only.
-- tests/test_grafana_sql.py applies this file and runs every panel's SQL as this role, in both
-- storage modes, so a panel reading anything not granted here fails there.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'grafana_reader') THEN
        CREATE ROLE grafana_reader NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO grafana_reader;
GRANT SELECT ON series, sources, readings, rollup_1m, rollup_1h, rollup_1d, rollup_series,
                rollup_1m_stats, rollup_1h_stats, rollup_1d_stats,
                sensors_history, sensors, sensor_metrics, readings_located,
                alerts, maintenance_windows
   TO grafana_reader;
GRANT SELECT (id, received_at, source, reason, payload_size) ON quarantine TO grafana_reader;
GRANT EXECUTE ON FUNCTION series_buckets(int4[], timestamptz, timestamptz, interval) TO grafana_reader;

-- a dashboard left open on a year of raw readings must not hold the database
ALTER ROLE grafana_reader SET statement_timeout = '30s';
