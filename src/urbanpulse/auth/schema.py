"""The ``api_keys`` table (migration 20): only a SHA-256 of each key is stored, never the key."""

from __future__ import annotations

API_KEYS_SQL = """
CREATE TABLE api_keys (
    id            text PRIMARY KEY,          -- the public part of the key (upk_<id>_...), shown in lists
    name          text NOT NULL,             -- who or what holds it, e.g. 'grafana' or 'ana (operations)'
    role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin', 'ingest')),
    secret_sha256 bytea NOT NULL,            -- sha256 of the whole key; the key itself is printed once
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text,
    revoked_at    timestamptz,
    revoked_by    text
);
"""
