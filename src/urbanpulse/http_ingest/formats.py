"""The format of an HTTP request: names and short names in ``/ingest/<name>``, and the topic that picks it.

The pipeline decodes every batch with the service's :class:`~urbanpulse.formats.router.FormatRouter`;
a batch of the ``http`` source whose topic is ``http/<format>[/<sender>]`` is decoded by that
format (``FormatRouter.by_name``, built once with its configured options). The rest of the topic
is provenance only (a Sensor.Community station's ``X-Sensor``), kept in quarantine rows.
"""

from __future__ import annotations

from urbanpulse.errors import NotFound
from urbanpulse.formats.router import HTTP_SOURCE, HTTP_TOPIC
from urbanpulse.plugins import FORMAT_GROUP, installed

__all__ = ["ALIASES", "HTTP_SOURCE", "http_topic", "resolve_format_name"]

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
    return HTTP_TOPIC + format_name + (f"/{detail}" if detail else "")


def resolve_format_name(name: str) -> str:
    """The installed format ``name`` (or its alias) stands for; NotFound listing what is installed."""
    real = ALIASES.get(name, name)
    known = installed(FORMAT_GROUP)
    if real not in known:
        names = sorted(set(known) | set(ALIASES))
        raise NotFound(f"no format {name!r} is installed; POST to /ingest/<format> with one of: {', '.join(names)}")
    return real
