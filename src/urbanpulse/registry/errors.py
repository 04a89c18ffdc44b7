"""Registry errors; the API maps each to a 4xx whose message says what to do."""

from __future__ import annotations

from urbanpulse.errors import UrbanpulseError


class RegistryError(UrbanpulseError):
    """A registry request that cannot be done as asked."""


class SensorNotFound(RegistryError):
    """No current version of the sensor (never registered, or deleted)."""


class SensorExists(RegistryError):
    """Creating a sensor that is already registered."""


class InvalidChange(RegistryError):
    """A change that would break the history (effective before the current version, ...)."""
