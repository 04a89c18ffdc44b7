"""One format per MQTT topic filter / Kafka topic: ``ttn/#`` as TTS v3, ``city/#`` as canonical.

The pipeline takes one :class:`Format`; :class:`FormatRouter` is that format for a service whose
sources carry several. It picks each message's format by its topic (MQTT filters with ``+``
and ``#``; a Kafka topic name is a filter without wildcards, since Kafka names cannot contain
them), decodes each format's messages as one sub-batch and joins the results with message
indices pointing back into the original batch, so provenance, lanes and quarantine stay right.
A batch whose messages all share one format (the common case) is handed over untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from urbanpulse.formats.base import Decoded, DecodeLimits, Format, MessageBatch
from urbanpulse.model import ReadingColumns


#: HTTP ingest names its batches' source and topic so: topic ``http/<format>[/<sender>]`` picks the format
HTTP_SOURCE = "http"
HTTP_TOPIC = "http/"


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest; ``$`` topics need explicit filters)."""
    if topic_filter == topic:
        return True
    if topic.startswith("$") and not topic_filter.startswith("$"):
        return False
    f_parts = topic_filter.split("/")
    t_parts = topic.split("/")
    for k, f in enumerate(f_parts):
        if f == "#":
            return True
        if k >= len(t_parts):
            return False
        if f != "+" and f != t_parts[k]:
            return False
    return len(f_parts) == len(t_parts)


@dataclass
class _Part:
    fmt: Any
    batch: MessageBatch
    decoded: Decoded
    start: int  # first reading index of this part in the joined columns


class _RoutedRaw(list):
    """raw_items of a routed batch: the parts, so raw_of can ask the right format."""


class FormatRouter:
    """A Format that dispatches each message to the format configured for its topic."""

    name = "router"

    def __init__(self, default: Format, routes: Mapping[str, Format] | None = None,
                 build: Any = None) -> None:
        self.default = default
        self.routes = list((routes or {}).items())  # first matching filter wins, in config order
        self._cache: dict[str | None, Any] = {}
        self._build = build  # name -> format, for HTTP ingest's /ingest/<format> (built on first use)
        self._by_name: dict[str, Any] = {}

    def by_name(self, name: str) -> Any:
        """The format ``name`` with its configured options (HTTP ingest picks it per request);
        PluginError / ConfigError when it is not installed or cannot run with its options."""
        fmt = self._by_name.get(name)
        if fmt is None:
            if self._build is None:
                from urbanpulse.errors import PluginError

                raise PluginError(f"format {name!r} is not available here")
            fmt = self._by_name[name] = self._build(name)
        return fmt

    def format_for(self, topic: str | None) -> Any:
        """The format for messages on ``topic`` (the default when no filter matches)."""
        try:
            return self._cache[topic]
        except KeyError:
            pass
        found = self.default
        if topic is not None:
            for topic_filter, fmt in self.routes:
                if topic_matches(topic_filter, topic):
                    found = fmt
                    break
        if len(self._cache) < 100_000:
            self._cache[topic] = found
        return found

    def decode(self, batch: MessageBatch) -> Decoded:
        """Decode each message with its topic's format; never raises (each format does not)."""
        if batch.source == HTTP_SOURCE and batch.topics and batch.topics[0].startswith(HTTP_TOPIC):
            # one request: one format, named by the topic's first level after http/ (the rest is provenance)
            named = self._by_name.get(batch.topics[0][len(HTTP_TOPIC):].split("/", 1)[0])
            if named is not None:
                return self._single(named, batch)
        if not self.routes or batch.topics is None:
            return self._single(self.default, batch)
        fmts = [self.format_for(t) for t in batch.topics]
        first = fmts[0]
        if all(f is first for f in fmts):
            return self._single(first, batch)
        groups: dict[int, list[int]] = {}
        by_id: dict[int, Any] = {}
        for i, f in enumerate(fmts):
            groups.setdefault(id(f), []).append(i)
            by_id[id(f)] = f
        parts: list[_Part] = []
        columns: list[ReadingColumns] = []
        rejections = []
        start = 0
        for key, idx in groups.items():
            fmt = by_id[key]
            sub = _subset(batch, idx)
            decoded = fmt.decode(sub)
            cols = decoded.columns
            if len(cols):
                # the part keeps its own columns' message indices (into ``sub``) for the format's raw_of;
                # the joined columns get the batch's
                decoded = Decoded(columns=replace(cols), rejections=decoded.rejections, raw_items=decoded.raw_items)
                cols.msg = np.asarray(idx, dtype=np.int32)[cols.msg]
            columns.append(cols)
            rejections.extend(decoded.rejections)
            parts.append(_Part(fmt, sub, decoded, start))
            start += len(cols)
        joined = ReadingColumns.concat(columns)
        return Decoded(columns=joined, rejections=rejections, raw_items=_RoutedRaw(parts))

    def _single(self, fmt: Any, batch: MessageBatch) -> Decoded:
        decoded = fmt.decode(batch)
        return Decoded(columns=decoded.columns, rejections=decoded.rejections,
                       raw_items=_RoutedRaw([_Part(fmt, batch, decoded, 0)]))

    def raw_of(self, batch: MessageBatch, decoded: Decoded, k: int) -> bytes:
        """The raw bytes to quarantine for reading ``k``, from the format that decoded it."""
        parts: list[_Part] = decoded.raw_items  # type: ignore[assignment]
        part = parts[0]
        for p in parts:
            if p.start <= k:
                part = p
        raw_of = getattr(part.fmt, "raw_of", None)
        local = k - part.start
        if raw_of is None:
            return batch.payloads[int(decoded.columns.msg[k])]
        return raw_of(part.batch, part.decoded, local)


def _subset(batch: MessageBatch, idx: list[int]) -> MessageBatch:
    def pick(values):  # noqa: ANN001, ANN202
        return None if values is None else [values[i] for i in idx]

    return MessageBatch(source=batch.source, payloads=[batch.payloads[i] for i in idx], topics=pick(batch.topics),
                        partitions=pick(batch.partitions), offsets=pick(batch.offsets),
                        topic_fields=pick(batch.topic_fields), received_ns=batch.received_ns,
                        lanes=None if batch.lanes is None else batch.lanes[np.asarray(idx, dtype=np.int64)])


def format_builder(settings: Any, limits: DecodeLimits, catalogue: Any = None) -> Any:
    """``get(name)``: format ``name`` built once with its configured options (``formats.options``,
    ``formats.metric_names``); for the topic routes below and for HTTP ingest's formats by name.
    ConfigError (naming the field) when ``formats.options`` names a format that is not installed."""
    from urbanpulse.plugins import FORMAT_GROUP, build_format, installed

    fs = settings.formats
    known = installed(FORMAT_GROUP)
    for name in fs.options:
        if name not in known:
            from urbanpulse.errors import ConfigError

            raise ConfigError(f"invalid configuration: formats.options.{name}: no format {name!r} is installed "
                              f"(installed: {', '.join(sorted(known))})")
    metric_names = dict(fs.metric_names)
    built: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in built:
            options = dict(fs.options.get(name) or {})
            if metric_names and name != "json":
                options.setdefault("metric_names", {})
                options["metric_names"] = {**metric_names, **options["metric_names"]}
            built[name] = build_format(name, options or None, limits, catalogue)
        return built[name]

    return get


def build_router(settings: Any, limits: DecodeLimits, catalogue: Any = None, get: Any = None) -> Any:
    """The formats the config names (``formats:``, ``formats.routes``, ``mqtt.formats``, ``kafka.formats``), each built
    once with its validated options; PluginError / ConfigError (naming the field) on mistakes.
    ``get`` is a :func:`format_builder` to share built formats with (one is made if None)."""
    fs = settings.formats
    get = get or format_builder(settings, limits, catalogue)
    routes: dict[str, Any] = {}
    for section in ("mqtt", "kafka"):
        sec = getattr(settings, section)
        if sec.enabled:
            for topic_filter, name in sec.formats.items():
                routes[topic_filter] = get(name)
    for topic_filter, name in fs.routes.items():  # any source's topics, plugin sources included
        routes.setdefault(topic_filter, get(name))
    # always a router: HTTP ingest picks formats by name per request (built on first use); with
    # no routes the router hands each batch straight to the default format
    return FormatRouter(get(fs.default), routes, build=get)
