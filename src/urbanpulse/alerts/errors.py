"""Errors of the alert API; the HTTP layer maps them to 404 / 409 / 422 with their message
through their generic bases in :mod:`urbanpulse.errors`."""

from __future__ import annotations

from urbanpulse.errors import Conflict, InvalidRequest, NotFound, UrbanpulseError


class AlertError(UrbanpulseError):
    """Base of the alert errors."""


class AlertNotFound(AlertError, NotFound):
    """No alert (or maintenance window) with that id."""


class InvalidTransition(AlertError, Conflict):
    """The requested state change is not allowed from the alert's current state."""

    def __init__(self, message: str, state: str) -> None:
        super().__init__(message)
        self.state = state


class InvalidQuery(AlertError, InvalidRequest):
    """A filter, cursor or body value is malformed; the message says what is expected."""
