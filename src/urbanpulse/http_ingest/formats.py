"""The format of an HTTP request, inside the one format the pipeline decodes with.

The pipeline decodes every batch with one :class:`~urbanpulse.formats.base.Format` (the topic
router of the MQTT/Kafka config). :class:`HttpFormats` wraps it: a batch of the ``http`` source
whose topics are ``$http/<format>[/...]`` is decoded by that format, built once by name with its
configured options; every other batch goes to the wrapped format untouched (one string check
per batch on the broker paths). ``$`` topics cannot come from MQTT clients or Kafka, so no
broker message can pick a format this way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from urbanpulse.errors import NotFound, PluginError
from urbanpulse.formats.base import Decoded, Format, MessageBatch
from urbanpulse.plugins import FORMAT_GROUP, installed

#: the source name of readings that arrive over HTTP (metrics, quarantine, the sources table)
HTTP_SOURCE = "http"
TOPIC_PREFIX = "$http/"

#: short names in /ingest/<name> for formats whose plugin name carries a version
ALIASES: dict[str, str] = {
    "ttn": "ttn_v3",
    "tts": "ttn_v3",
    "chirpstack": "chirpstack_v4",
    "sensor-community": "sensor_community",
    "luftdaten": "sensor_community",
    "influx": "influx_line",
    "line": "influx_line",
    "canonical": "json",
}


def http_topic(format_name: str, detail: str | None = None) -> str:
    """The topic an HTTP message carries: picks its format, and is its provenance in quarantine."""
    return TOPIC_PREFIX + format_name + (f"/{detail}" if detail else "")


def resolve_format_name(name: str) -> str:
    """The installed format ``name`` (or its alias) stands for; NotFound listing what is installed."""
    real = ALIASES.get(name, name)
    known = installed(FORMAT_GROUP)
    if real not in known:
        names = sorted(set(known) | set(ALIASES))
        raise NotFound(f"no format {name!r} is installed; POST to /ingest/<format> with one of: {', '.join(names)}")
    return real


class HttpFormats:
    """A Format: HTTP batches by the format their topic names, everything else by ``inner``."""

    def __init__(self, inner: Format, build: Callable[[str], Any]) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "router")
        self._build = build
        self._inner_raw_of = getattr(inner, "raw_of", None)

    def format(self, name: str) -> Any:
        """Format ``name`` (an installed plugin name), built once; PluginError if it cannot be built."""
        try:
            return self._build(name)
        except PluginError:
            raise
        except Exception as exc:  # noqa: BLE001 - ConfigError of its options etc.
            raise PluginError(f"format {name!r} cannot be used for HTTP ingest: {exc}") from exc

    def _chosen(self, batch: MessageBatch) -> Any:
        topics = batch.topics
        if batch.source == HTTP_SOURCE and topics and topics[0].startswith(TOPIC_PREFIX):
            return self._build(topics[0][len(TOPIC_PREFIX):].split("/", 1)[0])
        return None

    def decode(self, batch: MessageBatch) -> Decoded:
        """Decode with the request's format (HTTP) or the wrapped format (everything else)."""
        fmt = self._chosen(batch)
        return (fmt or self.inner).decode(batch)

    def raw_of(self, batch: MessageBatch, decoded: Decoded, k: int) -> bytes:
        """The raw bytes to quarantine for reading ``k``, asked of the format that decoded it."""
        fmt = self._chosen(batch)
        raw_of = getattr(fmt, "raw_of", None) if fmt is not None else self._inner_raw_of
        if raw_of is None:
            return batch.payloads[int(decoded.columns.msg[k])]
        return raw_of(batch, decoded, k)
