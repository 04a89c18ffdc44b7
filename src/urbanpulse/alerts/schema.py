"""Schema of the alert tables (migration 4): alerts, their event log and maintenance windows.

``alerts`` has a natural key (series_id, detector, opened_at) so the pipeline can upsert the
same change twice without a duplicate, and a partial unique index that makes "one open alert
per series and detector" a database guarantee rather than a hope. ``alert_events`` is the
append-only log behind the SSE stream: its bigserial id is the SSE event id, and the unique
(alert_id, kind, reopen_count, trigger_count) identity makes appending an event idempotent.
There is no foreign key from events to alerts on purpose: an FK check takes a row lock on the
alert, which could deadlock with the lock that orders event ids (see alerts/store.py).
"""

ALERTS_SQL = """
CREATE TABLE alerts (
    id                bigserial PRIMARY KEY,
    series_id         int4 NOT NULL,
    sensor_id         text NOT NULL,
    metric            text NOT NULL,
    detector          text NOT NULL,
    severity          text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state             text NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    flapping          bool NOT NULL DEFAULT false,
    reopen_count      int4 NOT NULL DEFAULT 0,
    opened_at         timestamptz NOT NULL,          -- event time of the first trigger
    last_triggered_at timestamptz NOT NULL,          -- event time of the latest trigger
    trigger_count     int8 NOT NULL DEFAULT 1,
    max_score         float8 NOT NULL DEFAULT 0,
    triggers          jsonb NOT NULL DEFAULT '[]',   -- latest triggering readings [{ts, value, score}]
    acknowledged_at   timestamptz,
    acknowledged_by   text,
    resolved_at       timestamptz,
    resolved_by       text,                          -- 'auto' or the user who resolved it
    updated_at        timestamptz NOT NULL DEFAULT now(),
    note              text,
    UNIQUE (series_id, detector, opened_at)
);
CREATE UNIQUE INDEX alerts_one_open ON alerts (series_id, detector) WHERE state <> 'resolved';
CREATE INDEX alerts_state_id ON alerts (state, id);
CREATE INDEX alerts_sensor_id ON alerts (sensor_id, id);
CREATE INDEX alerts_metric_id ON alerts (metric, id);
CREATE INDEX alerts_detector_id ON alerts (detector, id);
CREATE INDEX alerts_last_triggered ON alerts (last_triggered_at);
CREATE INDEX alerts_opened ON alerts (opened_at);
CREATE INDEX alerts_flapping ON alerts (id) WHERE flapping;

CREATE TABLE alert_events (
    id            bigserial PRIMARY KEY,             -- the SSE event id
    alert_id      int8 NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    kind          text NOT NULL CHECK (kind IN ('opened', 'updated', 'acknowledged', 'resolved',
                                                'reopened', 'flapping')),
    state         text NOT NULL,
    reopen_count  int4 NOT NULL,
    trigger_count int8 NOT NULL,
    payload       jsonb NOT NULL,                    -- the alert as GET /alerts/{id} returned it then
    UNIQUE (alert_id, kind, reopen_count, trigger_count)
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, id);

CREATE TABLE maintenance_windows (
    id         bigserial PRIMARY KEY,
    sensor     text NOT NULL,                        -- sensor id or fnmatch pattern (* ? [..])
    starts_at  timestamptz NOT NULL,                 -- event time
    ends_at    timestamptz NOT NULL,
    reason     text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX maintenance_windows_ends ON maintenance_windows (ends_at);
"""
