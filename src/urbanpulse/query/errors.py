"""Errors of history queries and exports.

Each is a subclass of the service-wide error types (:mod:`urbanpulse.errors`), so the API's
one error handler answers it: 422 (``invalid_request``) for a query that cannot be answered
as asked, 413 (``payload_too_large``) when a limit is hit, 404 for series that do not exist,
503 when the statement ran past its time limit. Every message says what to change.
"""

from __future__ import annotations

from urbanpulse.errors import InvalidRequest, NotFound, PayloadTooLarge, StorageUnavailable


class QueryError(InvalidRequest):
    """The query cannot be answered as asked (HTTP 422); the message says what to change."""


class QueryTooLarge(PayloadTooLarge):
    """The query would return or scan more than the configured limits (HTTP 413); narrow it."""


class UnknownSeries(NotFound):
    """No stored series matches the selection (HTTP 404)."""


class QueryTimeout(StorageUnavailable):
    """The database statement ran past the configured time limit (HTTP 503); narrow the query."""
