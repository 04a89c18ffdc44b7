"""Alert configuration (the `alerts:` section). Placeholder until alerts land."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AlertSettings(BaseModel):
    """Severities, auto-resolve, flap suppression, maintenance windows, webhooks."""

    model_config = ConfigDict(extra="forbid")
