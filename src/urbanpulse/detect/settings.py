"""Detector configuration (the `detection:` section). Placeholder until the detectors land."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DetectionSettings(BaseModel):
    """Which detectors run, with what parameters, per metric and sensor group."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
