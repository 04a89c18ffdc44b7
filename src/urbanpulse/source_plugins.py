"""Sources found by entry-point name (``urbanpulse.connectors``), built-ins included.

The built-in MQTT and Kafka sources keep their config sections (``mqtt:``, ``kafka:``); they
are still looked up by name like any plugin. Plugin sources are listed under ``sources:``::

    sources:
      - plugin: acme_push          # entry-point name in the group urbanpulse.connectors
        name: acme-north           # optional; the readings' source (default: the plugin name)
        options: {port: 9000}      # validated against the plugin's `Config` pydantic model

A source class is called as ``factory(config, metrics)``: ``config`` is its validated
``Config`` model (or the options dict when it declares none), ``metrics`` the service's
:class:`~urbanpulse.metrics.IngestMetrics`. Its ``name`` is then set to the configured name, and
it must name its batches after it. A bad option stops start-up naming ``sources[i].options.<field>``;
a plugin that cannot be loaded raises PluginError naming its package.
"""

from __future__ import annotations

from typing import Any

from urbanpulse.errors import ConfigError, PluginError
from urbanpulse.plugins import SOURCE_GROUP, load, options_model, validate_options


def build_sources(settings: Any, metrics: Any) -> list[Any]:
    """The configured sources, in order: mqtt, kafka (when enabled), then ``sources:`` entries."""
    out: list[Any] = []
    if settings.mqtt.enabled:
        factory, _ = load(SOURCE_GROUP, "mqtt")
        out.append(factory(settings.mqtt, metrics))
    if settings.kafka.enabled:
        factory, _ = load(SOURCE_GROUP, "kafka")
        out.append(factory(settings.kafka, metrics))
    for i, entry in enumerate(settings.sources):
        if not entry.enabled:
            continue
        factory, info = load(SOURCE_GROUP, entry.plugin)
        where = f"sources[{i}].options"
        config = validate_options(SOURCE_GROUP, entry.plugin, factory, entry.options, where) \
            if options_model(factory) is not None else dict(entry.options)
        try:
            source = factory(config, metrics)
        except (ConfigError, PluginError):
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's constructor failing is the plugin's fault
            raise PluginError(f"source {entry.plugin!r} from package {info.package!r} {info.version} failed to "
                              f"start ({type(exc).__name__}: {exc})") from exc
        for attr in ("run", "health"):
            if not callable(getattr(source, attr, None)):
                raise PluginError(f"source {entry.plugin!r} from package {info.package!r} has no {attr}(); it must "
                                  f"follow urbanpulse.connectors.base.Source")
        source.name = entry.name or entry.plugin
        out.append(source)
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"invalid configuration: sources: names {dupes} are used twice; give each a `name`")
    return out
