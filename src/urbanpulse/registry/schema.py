"""The registry's tables (migration 10): every version of every sensor, with its validity period.

``sensors_history`` holds one row per version of a sensor, valid over ``[valid_from, valid_to)``;
the current version has ``valid_to IS NULL``. Nothing is ever updated in place except closing a
version, so a sensor that moved keeps its old position for the readings it took there:
``sensor_position_at(sensor, t)`` and the ``readings_located`` view resolve a reading's position
from the version valid at its event time (a reading's own lat/lon, from a mobile sensor, wins).

``sensors`` and ``sensor_metrics`` are views of the current versions: what the API lists and
what queries filter on. The table depends only on the core ``series`` and ``readings`` tables.
"""

from __future__ import annotations

REGISTRY_SQL = """
CREATE TABLE sensors_history (
    sensor_id    text NOT NULL,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz,                  -- NULL: the current version
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    type         text NOT NULL DEFAULT '',
    lat          float8 NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon          float8 NOT NULL CHECK (lon BETWEEN -180 AND 180),
    elevation    float8,
    area         text,
    tags         text[] NOT NULL DEFAULT '{}',
    owner        text,
    install_date date,
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'maintenance', 'retired')),
    data_class   text NOT NULL DEFAULT 'open' CHECK (data_class IN ('open', 'restricted', 'personal')),
    licence      text,
    -- {"pm2_5": {"unit": "ug/m3", "interval_s": 3600}, ...}
    metrics      jsonb NOT NULL DEFAULT '{}',
    changed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sensor_id, valid_from),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE UNIQUE INDEX sensors_history_current ON sensors_history (sensor_id) WHERE valid_to IS NULL;
CREATE INDEX sensors_history_current_area ON sensors_history (area) WHERE valid_to IS NULL;
CREATE INDEX sensors_history_current_tags ON sensors_history USING gin (tags) WHERE valid_to IS NULL;

CREATE VIEW sensors AS
SELECT sensor_id, name, description, type, lat, lon, elevation, area, tags, owner, install_date,
       status, data_class, licence, metrics, valid_from
  FROM sensors_history WHERE valid_to IS NULL;

CREATE VIEW sensor_metrics AS
SELECT h.sensor_id, m.key AS metric, m.value->>'unit' AS unit, (m.value->>'interval_s')::float8 AS interval_s
  FROM sensors_history h, jsonb_each(h.metrics) m
 WHERE h.valid_to IS NULL;

-- where sensor p_sensor stood at p_at (no row: not registered then)
CREATE FUNCTION sensor_position_at(p_sensor text, p_at timestamptz)
RETURNS TABLE (lat float8, lon float8, elevation float8, area text)
LANGUAGE sql STABLE AS $$
    SELECT lat, lon, elevation, area FROM sensors_history
     WHERE sensor_id = p_sensor AND valid_from <= p_at AND (valid_to IS NULL OR p_at < valid_to)
$$;

-- every reading with the position of its sensor at the reading's event time
CREATE VIEW readings_located AS
SELECT r.series_id, s.sensor_id, s.metric, r.ts, r.value, r.flags,
       coalesce(r.lat, h.lat) AS lat, coalesce(r.lon, h.lon) AS lon, h.elevation, h.area
  FROM readings r
  JOIN series s ON s.id = r.series_id
  LEFT JOIN sensors_history h
    ON h.sensor_id = s.sensor_id AND h.valid_from <= r.ts AND (h.valid_to IS NULL OR r.ts < h.valid_to);
"""

#: migration 11: which series a quarantined payload names, for the quality figures. A payload that
#: is not a JSON object with sensor_id/metric (not UTF-8, not JSON, an array) names none.
QUARANTINE_SERIES_SQL = """
CREATE FUNCTION quarantine_series(p bytea, OUT sensor_id text, OUT metric text)
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE doc jsonb;
BEGIN
    doc := convert_from(p, 'UTF8')::jsonb;
    IF jsonb_typeof(doc) = 'object' THEN
        sensor_id := doc->>'sensor_id';
        metric := doc->>'metric';
    END IF;
EXCEPTION WHEN others THEN
    RETURN;  -- unreadable payload: names no series
END $$;
"""
