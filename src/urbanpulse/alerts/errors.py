"""Errors of the alert API; the HTTP layer maps them to 404 / 409 / 422 with their message."""

from __future__ import annotations

from urbanpulse.errors import UrbanpulseError


class AlertError(UrbanpulseError):
    """Base of the alert errors."""


class AlertNotFound(AlertError):
    """No alert (or maintenance window) with that id."""


class InvalidTransition(AlertError):
    """The requested state change is not allowed from the alert's current state."""

    def __init__(self, message: str, state: str) -> None:
        super().__init__(message)
        self.state = state


class InvalidQuery(AlertError):
    """A filter, cursor or body value is malformed; the message says what is expected."""
