"""The ``privacy:`` section of the configuration (docs/privacy.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DataClass = Literal["open", "restricted", "personal"]
Rotation = Literal["never", "year", "month", "week", "day"]


class ClassPolicy(BaseModel):
    """What happens at ingest to the readings of one data class."""

    model_config = ConfigDict(extra="forbid")

    pseudonymise: bool = Field(False, description="replace the device id by its keyed pseudonym (HMAC-SHA256)")
    drop_fields: list[Literal["location", "unit"]] = Field(
        default_factory=list, description="reading fields removed before anything is stored")
    drop_metrics: list[str] = Field(default_factory=list, description="metrics never stored for this class")
    location_decimals: int | None = Field(
        None, ge=0, le=8, description="positions rounded to this many decimal degrees (3 ~ 110 m, 2 ~ 1.1 km); "
        "null keeps them as sent")
    position_readings: bool = Field(
        False, description="a reading with a position and no value is stored as metric `position` (value 1: one "
        "fix) instead of being quarantined as missing_value")
    quarantine_payload: Literal["keep", "redact"] = Field(
        "keep", description="redact: a quarantined item keeps only what this class allows (pseudonym, metric, "
        "time, value, coarsened position), a quarantined message none of its bytes")

    @property
    def active(self) -> bool:
        """Whether this policy changes anything (an inactive class costs nothing on the hot path)."""
        return bool(self.pseudonymise or self.drop_fields or self.drop_metrics or self.location_decimals is not None
                    or self.position_readings or self.quarantine_payload != "keep")


def _default_policies() -> dict[str, ClassPolicy]:
    return {"personal": ClassPolicy(pseudonymise=True, location_decimals=3, position_readings=True,
                                    quarantine_payload="redact")}


class PrivacySettings(BaseModel):
    """Data classes of sources and topics and what each class keeps (docs/privacy.md).

    The class of a message: ``topics`` (first matching MQTT-style filter), else ``sources`` (by
    source name: mqtt, kafka, http, a plugin's name), else ``open``."""

    model_config = ConfigDict(extra="forbid")

    sources: dict[str, DataClass] = Field(default_factory=dict, description="source name -> data class")
    topics: dict[str, DataClass] = Field(default_factory=dict, description="topic filter (MQTT wildcards) -> class")
    policies: dict[DataClass, ClassPolicy] = Field(
        default_factory=_default_policies, description="per data class, what ingest does to its readings; a "
        "class without an entry is stored as sent")
    key_file: Path | None = Field(None, description="file holding the pseudonym key (>= 16 bytes), outside the "
                                  "database; else the environment variable named by key_env")
    key_env: str = Field("URBANPULSE_PSEUDONYM_KEY", min_length=1, description="environment variable with the key")
    rotation: Rotation = Field("month", description="pseudonyms change each period of the reading's event time; "
                               "a device keeps one pseudonym within a period")
    position_metric: str = Field("position", min_length=1, description="metric of position-only readings")

    def classes_in_use(self) -> set[str]:
        """Data classes some source or topic is given."""
        return set(self.sources.values()) | set(self.topics.values())
