"""Window configuration (the `windows:` section). Placeholder until windows land."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WindowSettings(BaseModel):
    """Tumbling window sizes, allowed lateness, idle close and eviction."""

    model_config = ConfigDict(extra="forbid")
