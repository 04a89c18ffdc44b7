"""Errors of history queries and exports; the API maps each to one status code."""

from __future__ import annotations

from urbanpulse.errors import UrbanpulseError


class QueryError(UrbanpulseError):
    """The query cannot be answered as asked (HTTP 422); the message says what to change."""

    status = 422


class QueryTooLarge(QueryError):
    """The query would return or scan more than the configured limits (HTTP 413); narrow it."""

    status = 413


class UnknownSeries(QueryError):
    """A sensor or series asked for does not exist (HTTP 404)."""

    status = 404


class QueryTimeout(UrbanpulseError):
    """The database statement ran past the configured time limit (HTTP 503)."""

    status = 503
