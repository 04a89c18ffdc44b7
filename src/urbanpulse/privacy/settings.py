"""The ``privacy:`` section of the configuration (docs/privacy.md)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from urbanpulse.privacy.grid import Grid

DataClass = Literal["open", "restricted", "personal"]
Rotation = Literal["never", "year", "month", "week", "day"]


#: strictness order of the data classes: a message is in the stricter of its topic's/source's and
#: its sensor's registry class
CLASS_RANK: dict[str, int] = {"open": 0, "restricted": 1, "personal": 2}


class CoarsenStep(BaseModel):
    """One step of "coarser with age": positions older than ``after`` are kept only at ``decimals``
    (rounding) or ``geohash`` (the centre of the geohash cell of that precision)."""

    model_config = ConfigDict(extra="forbid")

    after: timedelta = Field(..., gt=timedelta(0), description="age (by event time) from which this precision applies")
    decimals: int | None = Field(None, ge=0, le=8, description="round to this many decimal degrees")
    geohash: int | None = Field(None, ge=1, le=12, description="snap to the centre of the geohash cell of this length")

    @model_validator(mode="after")
    def _one_precision(self) -> CoarsenStep:
        if (self.decimals is None) == (self.geohash is None):
            raise ValueError("a coarsen_after step needs exactly one of decimals or geohash")
        return self

    @property
    def grid(self) -> Grid:
        """The grid positions are snapped to."""
        return Grid.of(self.decimals, self.geohash)


class ClassRetention(BaseModel):
    """How long one data class keeps its rows (null: as long as the table keeps them, see
    database.retention). Shorter than the table's period: the class's rows are deleted; the table's
    own period drops whole partitions/chunks (docs/privacy.md)."""

    model_config = ConfigDict(extra="forbid")

    readings: timedelta | None = Field(None, gt=timedelta(0), description="readings, by event time")
    rollups: timedelta | None = Field(None, gt=timedelta(0), description="1-minute, 1-hour and 1-day rollups, "
                                      "by the end of their bucket")
    quarantine: timedelta | None = Field(None, gt=timedelta(0), description="quarantine rows, by received_at")
    alerts: timedelta | None = Field(None, gt=timedelta(0), description="resolved alerts (by resolved_at) and alert "
                                     "events (by at); open alerts stay")

    @property
    def any(self) -> bool:
        """Whether anything is set."""
        return any(v is not None for v in (self.readings, self.rollups, self.quarantine, self.alerts))


class ClassPolicy(BaseModel):
    """What happens at ingest to the readings of one data class, and how long and how precisely
    their rows are kept afterwards."""

    model_config = ConfigDict(extra="forbid")

    pseudonymise: bool = Field(False, description="replace the device id by its keyed pseudonym (HMAC-SHA256)")
    drop_fields: list[Literal["location", "unit"]] = Field(
        default_factory=list, description="reading fields removed before anything is stored")
    drop_metrics: list[str] = Field(default_factory=list, description="metrics never stored for this class")
    location_decimals: int | None = Field(
        None, ge=0, le=8, description="positions rounded to this many decimal degrees (3 ~ 110 m, 2 ~ 1.1 km); "
        "null keeps them as sent")
    location_geohash: int | None = Field(
        None, ge=1, le=12, description="instead of location_decimals: positions snapped to the centre of their "
        "geohash cell of this length (7 ~ 153 m x 153 m, 6 ~ 1.2 km x 0.6 km, 5 ~ 4.9 km x 4.9 km)")
    coarsen_after: list[CoarsenStep] = Field(
        default_factory=list, description="coarser with age: stored positions older than `after` are coarsened to "
        "the step's precision by the retention job, e.g. [{after: P30D, decimals: 2}]")
    retention: ClassRetention = Field(default_factory=ClassRetention, description="per-class retention")
    position_readings: bool = Field(
        False, description="a reading with a position and no value is stored as metric `position` (value 1: one "
        "fix) instead of being quarantined as missing_value")
    quarantine_payload: Literal["keep", "redact"] = Field(
        "keep", description="redact: a quarantined item keeps only what this class allows (pseudonym, metric, "
        "time, value, coarsened position), a quarantined message none of its bytes")

    @model_validator(mode="after")
    def _precision(self) -> ClassPolicy:
        if self.location_decimals is not None and self.location_geohash is not None:
            raise ValueError("set location_decimals or location_geohash, not both")
        finer = self.grid
        for step in sorted(self.coarsen_after, key=lambda s: s.after):
            if finer is not None and not step.grid.coarser_or_equal(finer):
                raise ValueError(f"coarsen_after step after {step.after} ({step.grid}) is finer than the precision "
                                 f"before it ({finer}): each step must be coarser")
            finer = step.grid
        self.coarsen_after = sorted(self.coarsen_after, key=lambda s: s.after)
        return self

    @property
    def grid(self) -> Grid | None:
        """The grid of positions at ingest (None: kept as sent)."""
        if self.location_decimals is None and self.location_geohash is None:
            return None
        return Grid.of(self.location_decimals, self.location_geohash)

    @property
    def active(self) -> bool:
        """Whether this policy changes anything at ingest (an inactive class costs nothing on the hot path)."""
        return bool(self.pseudonymise or self.drop_fields or self.drop_metrics or self.grid is not None
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

    k_anonymity: int = Field(
        5, ge=2, description="open aggregates of personal data (GET /open/personal-aggregates) suppress every cell with "
        "fewer than this many distinct devices")

    def classes_in_use(self) -> set[str]:
        """Data classes some source or topic is given."""
        return set(self.sources.values()) | set(self.topics.values())

    def class_of(self, source: str, topic: str | None) -> str:
        """The data class of a message by its topic (first matching filter), else its source."""
        from urbanpulse.formats.router import topic_matches

        if topic is not None:
            for flt, cls in self.topics.items():
                if topic_matches(flt, topic):
                    return cls
        return self.sources.get(source, "open")

    def policy(self, data_class: str) -> ClassPolicy | None:
        """The policy of a class (None: none configured)."""
        return self.policies.get(data_class)  # type: ignore[call-overload]
