"""The ``registry:`` configuration section."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RegistrySettings(BaseModel):
    """What the ingest path does with readings from sensors that are not in the register."""

    model_config = ConfigDict(extra="forbid")

    unregistered: Literal["accept", "quarantine"] = Field(
        "accept", description="accept: store them (listed by GET /sensors/unregistered); quarantine: "
        "quarantine them with reason unknown_sensor")
    refresh_s: float = Field(
        10.0, gt=0, description="how often the service re-reads the registered sensor ids (changes made through "
        "this service's API apply at once; imports from the command line within this time)")
