"""Exceptions users can catch; every message says what to do next.

The whole hierarchy lives here (as in httpx's ``_exceptions.py``) so a caller can catch a
family at once, and so the HTTP API can answer every error from one handler
(:mod:`urbanpulse.api.errors`) by its base class instead of per route::

    UrbanpulseError
    ├── ConfigError              the configuration file or environment is invalid
    ├── StorageUnavailable       the database cannot be reached (HTTP 503)
    ├── MigrationError           a schema migration failed (the CLI exits 2 with the message)
    ├── EmbeddedDatabaseError    the embedded PostgreSQL did not start
    ├── PluginError              a connector or format plugin is unknown or misconfigured
    ├── NotFound                 no such thing (HTTP 404)
    ├── InvalidRequest           a malformed filter, id or body value (HTTP 422)
    ├── Conflict                 not allowed in the current state (HTTP 409)
    ├── FeatureDisabled          the feature is switched off in the configuration (HTTP 503)
    ├── PayloadTooLarge          a request body over the configured limit (HTTP 413)
    └── AccessDenied             no or a bad API key (401), or a key without the role (403)
        ├── NotAuthenticated
        └── Forbidden
"""

from __future__ import annotations


class UrbanpulseError(Exception):
    """Base of every error urbanpulse raises on purpose."""


class ConfigError(UrbanpulseError):
    """The configuration file or environment is invalid; the message names the field."""


class StorageUnavailable(UrbanpulseError):
    """The database cannot be reached or refused a write; readings stay un-acknowledged."""


class SourceHalted(StorageUnavailable):
    """A batch from this source failed to write with a permanent error (see ``/health``): its
    acknowledgements and intake stop until that batch is written; fix the cause the message names."""


class SeriesLookupFailed(UrbanpulseError):
    """Resolving a batch's series ids failed with a permanent error (logged with its cause): the
    batch is stored without analysis, or parked if its write fails the same way (``/health``)."""


class AnalyticsUnavailable(UrbanpulseError):
    """Stream analytics could not build its windows and detectors (their compiled kernels failed
    to load or compile): readings are stored without analysis; the message says what to check."""


class MigrationError(UrbanpulseError):
    """A migration failed; the database is left at the last version that succeeded."""


class EmbeddedDatabaseError(UrbanpulseError):
    """The embedded PostgreSQL used when no database is configured failed to start."""


class PluginError(UrbanpulseError):
    """A connector or format plugin is unknown or misconfigured."""


class NotFound(UrbanpulseError):
    """The thing asked for (an alert, a window, a key, a sensor) does not exist."""


class InvalidRequest(UrbanpulseError):
    """A filter, id, cursor or body value is malformed; the message says what is expected."""


class Conflict(UrbanpulseError):
    """The request is well formed but not allowed in the current state (e.g. resolving twice)."""


class FeatureDisabled(UrbanpulseError):
    """The endpoint's feature is switched off; the message names the setting that turns it on."""


class PayloadTooLarge(UrbanpulseError):
    """A request body is larger than ``api.max_body_bytes``."""


class UnsupportedMediaType(UrbanpulseError):
    """A request body's Content-Type or Content-Encoding is not one the endpoint reads (HTTP 415)."""


class UnreadableBody(UrbanpulseError):
    """A request body that cannot be read at all: empty, or compressed data that does not inflate (HTTP 400)."""


class AccessDenied(UrbanpulseError):
    """A request without the right API key; ``code`` is a stable machine-readable reason."""

    status = 403

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class NotAuthenticated(AccessDenied):
    """No key, a malformed, unknown or revoked key (HTTP 401)."""

    status = 401


class Forbidden(AccessDenied):
    """A valid key whose role does not allow this endpoint (HTTP 403)."""

    status = 403
