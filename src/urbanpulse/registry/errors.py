"""Registry errors; each is also the API's generic error of its kind (404 / 409), so the one
error handler of :mod:`urbanpulse.api.errors` answers them with their message."""

from __future__ import annotations

from urbanpulse.errors import Conflict, NotFound, UrbanpulseError


class RegistryError(UrbanpulseError):
    """A registry request that cannot be done as asked."""


class SensorNotFound(RegistryError, NotFound):
    """No current version of the sensor (never registered, or deleted)."""


class SensorExists(RegistryError, Conflict):
    """Creating a sensor that is already registered."""


class InvalidChange(RegistryError, Conflict):
    """A change that would break the history (effective before the current version, ...)."""
