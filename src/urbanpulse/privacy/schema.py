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
