"""The append-only audit table of subject exports and erasures (migration 90)."""

PRIVACY_AUDIT_SQL = """
CREATE TABLE privacy_audit (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,           -- who ran it (operating-system user or API key name)
    action  text NOT NULL,           -- subject_export, subject_erase
    subject text NOT NULL,           -- keyed digest of the device id, never the id itself
    rows    jsonb NOT NULL           -- per table, how many rows were exported or erased
);
CREATE FUNCTION privacy_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'privacy_audit is append-only';
END $$;
CREATE TRIGGER privacy_audit_append_only BEFORE UPDATE OR DELETE ON privacy_audit
    FOR EACH STATEMENT EXECUTE FUNCTION privacy_audit_append_only();
"""

#: migration 91: the data class of each stored series. ``series.data_class`` is what ingest knew
#: when the series was created (its topic's or source's class, recorded by the privacy stage);
#: ``series_classes`` is the class that counts: the stricter of that and the sensor's current
#: registry entry. Retention per class, coarsening with age and open aggregates select by it.
SERIES_CLASS_SQL = """
ALTER TABLE series ADD COLUMN data_class text CHECK (data_class IN ('open', 'restricted', 'personal'));
UPDATE series SET data_class = 'personal' WHERE sensor_id LIKE 'psn-%';
CREATE VIEW series_classes AS
SELECT s.id AS series_id, s.sensor_id, s.metric,
       CASE WHEN 'personal' IN (h.data_class, s.data_class) THEN 'personal'
            WHEN 'restricted' IN (h.data_class, s.data_class) THEN 'restricted'
            ELSE 'open' END AS data_class
  FROM series s
  LEFT JOIN sensors_history h ON h.sensor_id = s.sensor_id AND h.valid_to IS NULL;
-- append-only means TRUNCATE too (migration 90 refused only UPDATE and DELETE)
CREATE TRIGGER privacy_audit_no_truncate BEFORE TRUNCATE ON privacy_audit
    FOR EACH STATEMENT EXECUTE FUNCTION privacy_audit_append_only();
"""
