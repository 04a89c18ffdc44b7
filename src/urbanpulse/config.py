"""One validated configuration: a YAML file, overridden by ``URBANPULSE_*`` environment variables.

Every field has a default that runs: with no file at all, ``urbanpulse run`` starts an embedded
PostgreSQL and the HTTP API, with no broker connections. Nested fields are set from the
environment with a double underscore, e.g. ``URBANPULSE_DATABASE__DSN=postgresql://...`` or
``URBANPULSE_KAFKA__BOOTSTRAP_SERVERS=broker:9092``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from urbanpulse.alerts.settings import AlertSettings
from urbanpulse.detect.settings import DetectionSettings
from urbanpulse.errors import ConfigError
from urbanpulse.live.settings import LiveSettings
from urbanpulse.privacy.settings import PrivacySettings
from urbanpulse.query.settings import HistorySettings
from urbanpulse.registry.settings import RegistrySettings
from urbanpulse.windows.settings import WindowSettings


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimescaleSettings(_Section):
    """Policies applied to the readings hypertable when TimescaleDB is in use."""

    compress_after: timedelta | None = Field(
        timedelta(days=7), description="compress chunks (readings and rollups) older than this; null: never")
    retain_for: timedelta | None = Field(
        None, description="older name of database.retention.readings (both modes); set one of them, not both")


class RetentionSettings(_Section):
    """How long each table keeps its rows, in both storage modes (storage/retention.py); null
    keeps everything. Readings and rollups go by event time, quarantine by arrival, alert events
    by when they happened. Everything dropped is logged and counted on /metrics."""

    readings: timedelta | None = Field(
        None, description="TimescaleDB: a retention policy drops whole 1-day chunks; PostgreSQL: whole monthly "
        "partitions, once the partition's last instant is older than this")
    rollup_1m: timedelta | None = Field(None, description="one-minute rollups")
    rollup_1h: timedelta | None = Field(None, description="one-hour rollups")
    rollup_1d: timedelta | None = Field(None, description="one-day rollups")
    quarantine: timedelta | None = Field(
        timedelta(days=90), description="quarantined payloads (raw input, may hold personal data) by received_at")
    alert_events: timedelta | None = Field(None, description="the alert event log behind the SSE stream, by `at`")
    check_every: timedelta = Field(timedelta(hours=1), gt=timedelta(0), description="how often the service applies "
                                   "retention (PostgreSQL partitions and deletes; TimescaleDB runs its own policy)")
    delete_batch_rows: int = Field(10_000, ge=100, description="rows per DELETE transaction (short locks; resumable)")


class RollupSettings(_Section):
    """Whether the rollup tables are maintained, and which levels (1 min, 1 h, 1 d) each series
    keeps (docs/rollups.md): a level is kept where its bucket holds at least
    ``min_readings_per_bucket`` readings of the series. Storage, not analytics: the rollups are
    maintained whether or not detection runs (every ``flush_every_s`` from memory, or in each
    batch's transaction)."""

    enabled: bool | None = Field(
        None, description="maintain the rollups in each batch's transaction (default true); false: queries "
        "aggregate the readings. windows.rollups is the older name of this switch")
    min_readings_per_bucket: int = Field(
        10, ge=1, description="a rollup row costs about two readings' storage: a level holding fewer readings per "
        "bucket is cheaper to compute from the readings when asked; 1 keeps every level for every series")
    learn_after: int = Field(8, ge=2, description="intervals seen before a series' learned interval decides")
    flush_every_s: float = Field(
        1.0, ge=0, description="merge the rollups every this many seconds (and 0.1 s after the last batch when "
        "idle) from the committed batches' partials held in memory, instead of in each batch's transaction; "
        "a crash loses nothing (the minutes are marked durably and rebuilt from the readings). 0: merge in "
        "each batch's transaction (rollups current at COMMIT, at about twice the cost)")
    intervals: dict[str, float] = Field(
        default_factory=dict, description="expected seconds between readings per metric, e.g. {pm2_5: 3600}: "
        "decides at the first reading instead of learning")

    @field_validator("intervals")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {m: s for m, s in v.items() if not s > 0}
        if bad:
            raise ValueError(f"intervals must be positive seconds: {bad}")
        return v


class DatabaseSettings(_Section):
    """Where readings are stored."""

    dsn: str | None = Field(None, description="postgresql://user:pass@host:5432/db; null = embedded PostgreSQL")
    embedded_data_dir: Path = Field(Path(".urbanpulse/pgdata"), description="data dir of the embedded server")
    storage_mode: Literal["auto", "timescaledb", "postgres"] = "auto"
    pool_size: int = Field(3, ge=2, le=64)
    connect_timeout_s: float = Field(10.0, gt=0)
    timescaledb: TimescaleSettings = TimescaleSettings()
    retention: RetentionSettings = RetentionSettings()
    rollups: RollupSettings = RollupSettings()

    @model_validator(mode="after")
    def _retain_for_is_readings_retention(self) -> DatabaseSettings:
        old, new = self.timescaledb.retain_for, self.retention.readings
        if old is not None and new is not None and old != new:
            raise ValueError("database.timescaledb.retain_for and database.retention.readings disagree; "
                             "keep only database.retention.readings")
        if old is not None:
            self.retention.readings = old
        return self


class IngestSettings(_Section):
    """Batching and backpressure."""

    batch_max_readings: int = Field(
        20_000, ge=1, description="a batch is written at this many readings (or at batch_max_ms): bigger batches "
        "amortise the per-batch work (rollup rows, detector calls) under load; at low rates the age limit rules")
    batch_max_ms: int = Field(200, ge=1)
    catch_up_batch_readings: int = Field(
        60_000, ge=0, description="while a source is at least this many messages behind (a Kafka consumer's lag: a "
        "backlog after a restart or an outage), its batches are written at this size instead of batch_max_readings, "
        "once the first batch since the start is formed: the per-batch work (detector and window calls over every "
        "series in the batch, the rollup partials, a transaction) is paid a third as often. The readings are old "
        "already, so the bigger batch costs no latency that matters; at live rates the lag is small and "
        "batch_max_readings rules. 0, or not above batch_max_readings: off")
    write_when_caught_up: bool = Field(
        True, description="form a source's batch at once when it has nothing more buffered and a writer is free "
        "(fewer batches queued or being written than writers), instead of waiting for batch_max_ms or the size "
        "(latency at low and moderate rates; costs more, smaller batches). False: only the size and the age form "
        "batches")
    max_in_flight_batches: int = Field(
        4, ge=1, description="batches queued or being written (formed, not yet committed); sources pause beyond")
    max_unacked_batches: int = Field(
        64, ge=1, description="batches formed and not yet acknowledged (a committed batch waiting for its Kafka "
        "commit or PUBACK holds only its acknowledgements, not its readings); sources pause beyond, so a broker "
        "that stops answering offset commits slows the sources down instead of letting them run ahead")
    writers: int = Field(2, ge=1, le=32, description="concurrent database writers")
    retry_initial_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(15.0, gt=0)
    write_timeout_s: float = Field(120.0, gt=0, description="a batch write hanging longer is abandoned and retried")
    unknown_error_attempts: int = Field(
        5, ge=1, description="attempts at a batch whose write (or series lookup) fails with an error known to be "
        "neither transient nor permanent (storage/write_errors.py) before the batch is parked like a permanent "
        "failure: its source halted, nothing acknowledged, retried every retry_max_s. Known transient errors (lost "
        "connection, restart, timeouts) are retried for ever")
    heap_keep_mb: int = Field(
        8, ge=0, le=4096, description="MiB of freed memory glibc keeps at the top of its heaps for the next batches "
        "(M_TRIM_THRESHOLD) instead of returning it to the system once 128 KiB are free: fewer fresh pages, each a "
        "page fault (heap_reuse.py; benchmarks/README.md lat19). Up to this much more RSS once the load touched it; "
        "0: glibc's default")


class ValidationSettings(_Section):
    """What counts as a valid reading."""

    max_payload_bytes: int = Field(256 * 1024, ge=64)
    max_json_depth: int = Field(16, ge=2)
    max_future_skew_s: float = Field(300.0, ge=0)
    max_age_s: float | None = Field(30 * 86400.0, description="older readings are quarantined; null disables")
    min_event_time: datetime | None = Field(
        datetime(2000, 1, 1, tzinfo=timezone.utc), description="readings before this are quarantined (too_old) "
        "whatever max_age_s says: each month a message touches is a partition (a day: a TimescaleDB chunk), so "
        "one message of readings from 1901 on made 1,512; set it earlier to import older history; null: 1900")
    max_message_days: int | None = Field(
        366, ge=1, description="distinct days (UTC) one message's readings may touch; the newest are kept, readings "
        "on older days quarantined (too_many_days): each day is a TimescaleDB chunk (a month a partition), so one "
        "message of daily readings 2000..now made ~9,500 chunks; a backfill sends history in messages of at most "
        "this many days (one per station-day, -hour or -year all fit); null: no limit")
    quarantine_payload_limit: int = Field(64 * 1024, ge=256, description="raw bytes kept per quarantined item")
    catalogue: Path | None = Field(None, description="metric catalogue YAML; null = the shipped one")
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict, description="extra/overriding metrics")


    @field_validator("min_event_time")
    @classmethod
    def _utc(cls, t: datetime | None) -> datetime | None:
        """A time without an offset is UTC (not the host's zone)."""
        return t.replace(tzinfo=timezone.utc) if t is not None and t.tzinfo is None else t

    @property
    def min_event_time_s(self) -> float | None:
        """:attr:`min_event_time` as seconds since the epoch (None: no floor but the hard 1900)."""
        return self.min_event_time.timestamp() if self.min_event_time is not None else None


class TlsSettings(_Section):
    """TLS for a broker connection."""

    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False


class MqttSettings(_Section):
    """MQTT source (paho-mqtt 2.x, QoS 1, persistent session, manual acks)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = Field("urbanpulse-ingest", min_length=1,
                           description="fixed: the broker keeps this session's unacked messages across restarts")
    topics: list[str] = Field(default_factory=lambda: ["city/#"])
    topic_templates: list[str] = Field(
        default_factory=list,
        description="e.g. city/{district}/{sensor_id}/{metric}: fills sensor_id/metric the payload lacks")
    qos: Literal[1] = 1
    protocol: Literal["3.1.1", "5"] = Field(
        "3.1.1", description="3.1.1 (clean_session false) is ~45% faster in paho than 5 (clean_start false + "
        "session expiry); with 3.1.1 set max_inflight_messages 0 on the broker, or it sends 20 at a time")
    username: str | None = None
    password: str | None = None
    tls: TlsSettings = TlsSettings()
    keepalive_s: int = Field(30, ge=5)
    session_expiry_s: int = Field(7 * 86400, ge=0, description="how long the broker keeps the session offline")
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    max_buffered_messages: int = Field(50_000, ge=100, description="received but not yet batched; paho pauses beyond")
    formats: dict[str, str] = Field(
        default_factory=dict, description="topic filter -> format name (e.g. {\"ttn/#\": ttn_v3}); first match wins, "
        "others use formats.default; the filters are subscribed too")

    @model_validator(mode="after")
    def _subscribe_format_filters(self) -> MqttSettings:
        self.topics = list(dict.fromkeys([*self.topics, *self.formats]))
        return self


class KafkaSettings(_Section):
    """Kafka source (aiokafka consumer group, manual commits after durable writes)."""

    enabled: bool = False
    bootstrap_servers: str = "127.0.0.1:9092"
    topics: list[str] = Field(default_factory=lambda: ["urbanpulse.readings"])
    group_id: str = "urbanpulse-ingest"
    group_instance_id: str | None = Field(
        None, min_length=1, max_length=249, description="static group membership (Kafka 2.3+): a stable id unique "
        "to this worker (e.g. its StatefulSet pod name). A restarted worker with the same id gets its partitions "
        "back without a rebalance; a worker that stops for good keeps them unread until session_timeout_ms. Two "
        "workers with the same id fence each other. None: dynamic membership (docs/operations.md)")
    assignment: Literal["group", "manual"] = Field(
        "group", description="group: partitions come from the consumer group (a join, a rebalance when workers come "
        "and go). manual: this worker reads every partition of `topics` itself, at once and without a join, and "
        "still commits its offsets to group_id after each durable write. For a single worker only: two manual "
        "workers both read everything (stored once, twice the work); docs/operations.md")
    client_id: str = "urbanpulse"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_records: int = Field(10_000, ge=1, description="per getmany call")
    fetch_max_wait_ms: int = Field(
        100, ge=1, le=10_000, description="how long the broker may hold a fetch that finds no new records. Apache "
        "Kafka answers as soon as a record arrives, so this only sets how often an idle consumer asks again; "
        "brokers that answer only when it runs out (Tansu) add up to this much to each reading's latency "
        "(benchmarks/README.md, issue 14 item 6). aiokafka's default is 500")
    session_timeout_ms: int = Field(
        6_000, ge=1000, description="a worker silent this long leaves the group; also how long a new group takes to "
        "form on some brokers (Tansu: about half of it) and how long a killed worker's partitions wait. 6 s is the "
        "least Apache Kafka accepts by default (group.min.session.timeout.ms); docs/operations.md")
    heartbeat_interval_ms: int = Field(2_000, ge=100, description="at most a third of session_timeout_ms")
    revoke_drain_timeout_s: float = Field(
        5.0, gt=0, description="on a rebalance, how long in-flight batches may take to be written and committed "
        "before the partitions go (the new owner re-reads the rest, stored once); rebalance_timeout_ms follows it "
        "(this + 5 s, at least session_timeout_ms): the group's joins can wait that long for every member")
    max_decompressed_bytes: int = Field(
        32 * 1024 * 1024, ge=1024 * 1024, description="how far one compressed record batch may inflate in memory "
        "(gzip; snappy, lz4 and zstd batches are refused). A batch beyond it is quarantined whole as fetched "
        "(payload_too_large) and the partition read on: without it one 400 KB gzip batch inflated to 400 MiB "
        "(benchmarks/README.md gzip33). 32 MiB: 128 of validation.max_payload_bytes' default")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    tls: TlsSettings = TlsSettings()
    formats: dict[str, str] = Field(
        default_factory=dict, description="topic -> format name; others use formats.default; the topics are "
        "subscribed too")

    @model_validator(mode="after")
    def _subscribe_format_topics(self) -> KafkaSettings:
        self.topics = list(dict.fromkeys([*self.topics, *self.formats]))
        return self

    @model_validator(mode="after")
    def _static_membership_needs_the_group(self) -> KafkaSettings:
        if self.assignment == "manual" and self.group_instance_id is not None:
            raise ValueError("kafka.group_instance_id (static membership) has no effect with kafka.assignment: "
                             "manual (no group is joined); remove one of them")
        return self


class SourceEntry(_Section):
    """A plugin source (entry-point group urbanpulse.connectors), see docs/connectors.md."""

    plugin: str = Field(..., min_length=1, description="entry-point name of the source plugin")
    name: str | None = Field(None, min_length=1, max_length=64, description="the readings' source; default: plugin")
    enabled: bool = True
    options: dict[str, Any] = Field(default_factory=dict, description="checked against the plugin's Config model")


class FormatsSettings(_Section):
    """Payload formats: the default, per-format options, vendor metric names (docs/connectors.md)."""

    default: str = Field("json", description="format of messages no mqtt.formats / kafka.formats entry matches")
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per format name, its options (checked against the format's model)")
    metric_names: dict[str, str] = Field(
        default_factory=dict, description="vendor metric name -> catalogue metric, for every vendor format")
    routes: dict[str, str] = Field(
        default_factory=dict, description="topic filter -> format for every source's messages (plugin sources "
        "too); checked after mqtt.formats / kafka.formats")


class HttpIngestSettings(_Section):
    """POST /ingest and /ingest/<format> (docs/connectors.md): readings over HTTP with an ingest key.
    The body as sent is limited by api.max_body_bytes like every request."""

    enabled: bool = True
    max_decompressed_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="a gzip body inflated; larger: 413")
    ack_timeout_s: float = Field(30.0, gt=0, description="not durable within this: 503 (send again; stored once)")
    max_messages: int = Field(10_000, ge=1, description="messages (array items, NDJSON / line-protocol lines) a "
                              "request may hold; more: 413, nothing stored")
    max_readings: int = Field(100_000, ge=1, description="readings and rejected items a request may decode to (a "
                              "SenML pack, an array per line holds many); more: 413, nothing stored")


class SupervisionSettings(_Section):
    """How failed sources are restarted and messages that crash them are recognised."""

    restart_initial_s: float = Field(0.5, gt=0, description="first back-off after a source fails; doubles per "
                                     "failure in a row")
    restart_max_s: float = Field(30.0, gt=0, description="longest back-off between restarts of a failed source")
    healthy_after_s: float = Field(60.0, gt=0, description="a source that ran this long before failing starts "
                                   "again from the first back-off")
    forget_suspects_after_s: float = Field(7 * 86400.0, gt=0, description="messages that crashed a source are "
                                           "remembered (database table source_suspects) this long")


class ApiSettings(_Section):
    """The HTTP API (health, metrics, alerts, keys; access control in docs/api.md)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    open_data: bool = Field(False, description="anonymous callers may read series whose data class is open "
                                               "(never restricted or personal); everything else needs an API key")
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="larger request bodies are answered 413")
    key_cache_s: float = Field(5.0, ge=0, description="a key that checked as valid is trusted this many seconds "
                               "without asking the database again: a key revoked by another process (the CLI, "
                               "another instance) stops working here within this time; one revoked through this "
                               "service's API at once. 0: check every request in the database")
    build_defer_s: float = Field(10.0, ge=0, description="the port answers from the start (GET /metrics as "
                                 "always, GET /health 503 'starting', every other endpoint 503 with Retry-After); "
                                 "the full API (0.2-0.4 s of CPU) is built once the process is not busy, e.g. "
                                 "catching up on a backlog, and at the latest this many seconds after the "
                                 "start. 0: built at once")
    build_below_cores: float = Field(0.3, ge=0, description="the process counts as busy while it uses at least "
                                     "this many cores of CPU (over 0.5 s; draining a backlog it uses 0.55-1.0 here); see build_defer_s")


class Settings(BaseSettings):
    """The whole urbanpulse configuration."""

    model_config = SettingsConfigDict(env_prefix="URBANPULSE_", env_nested_delimiter="__", extra="forbid")

    database: DatabaseSettings = DatabaseSettings()
    ingest: IngestSettings = IngestSettings()
    validation: ValidationSettings = ValidationSettings()
    mqtt: MqttSettings = MqttSettings()
    kafka: KafkaSettings = KafkaSettings()
    formats: FormatsSettings = FormatsSettings()
    sources: list[SourceEntry] = Field(default_factory=list, description="plugin sources beyond mqtt/kafka")
    http_ingest: HttpIngestSettings = HttpIngestSettings()
    api: ApiSettings = ApiSettings()
    supervision: SupervisionSettings = SupervisionSettings()
    windows: WindowSettings = WindowSettings()
    detection: DetectionSettings = DetectionSettings()
    alerts: AlertSettings = AlertSettings()
    registry: RegistrySettings = RegistrySettings()
    history: HistorySettings = HistorySettings()
    privacy: PrivacySettings = PrivacySettings()
    live: LiveSettings = LiveSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _rollups_switch_under_storage(self) -> Settings:
        # windows.rollups is the switch's older name (it is storage, not a window setting)
        rollups, old = self.database.rollups, self.windows.rollups
        if old is not None and rollups.enabled is not None and old != rollups.enabled:
            raise ValueError("windows.rollups and database.rollups.enabled disagree; keep only "
                             "database.rollups.enabled")
        if rollups.enabled is None:
            rollups.enabled = True if old is None else old
        self.windows.rollups = rollups.enabled
        return self

    @model_validator(mode="after")
    def _retention_outlasts_max_age(self) -> Settings:
        # a reading accepted after its partition or chunk was dropped would re-create it (and on
        # another instance whose partition cache still knows the month, fail its batch for good)
        r, max_age = self.database.retention, self.validation.max_age_s
        for table in ("readings", "rollup_1m", "rollup_1h", "rollup_1d"):
            keep = getattr(r, table)
            if keep is not None and (max_age is None or keep.total_seconds() < max_age):
                raise ValueError(f"database.retention.{table} ({keep}) must be at least validation.max_age_s "
                                 f"({max_age}): readings older than the retention would still be accepted; "
                                 f"set validation.max_age_s to at most {int(keep.total_seconds())}")
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper() if isinstance(v, str) else v

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment wins over the file, which is passed as init values
        return env_settings, init_settings


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read and validate the configuration; raise :class:`ConfigError` naming the bad field."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections (database:, mqtt:, ...)")
    _merge(data, overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        where = f" in {path}" if path else ""
        raise ConfigError(f"invalid configuration{where}: {problems}") from exc
    except SettingsError as exc:
        raise ConfigError(f"invalid URBANPULSE_* environment variable: {exc}; lists and mappings must be "
                          f"JSON, e.g. URBANPULSE_MQTT__TOPICS='[\"city/#\"]'") from exc


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
