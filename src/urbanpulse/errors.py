"""Exceptions users can catch; every message says what to do next."""

from __future__ import annotations


class UrbanpulseError(Exception):
    """Base of every error urbanpulse raises on purpose."""


class ConfigError(UrbanpulseError):
    """The configuration file or environment is invalid; the message names the field."""


class StorageUnavailable(UrbanpulseError):
    """The database cannot be reached or refused a write; readings stay un-acknowledged."""


class EmbeddedDatabaseError(UrbanpulseError):
    """The embedded PostgreSQL used when no database is configured failed to start."""


class PluginError(UrbanpulseError):
    """A connector or format plugin is unknown or misconfigured."""
