"""Plugins: formats (``urbanpulse.formats``) and sources (``urbanpulse.connectors``) by entry-point name.

A third-party package adds a format or a source without touching urbanpulse: it declares an
entry point in its own pyproject.toml, e.g. ::

    [project.entry-points."urbanpulse.formats"]
    acme_v2 = "acme_urbanpulse.format:AcmeFormat"

and the config names it (``mqtt.formats: {"acme/#": acme_v2}``). The built-ins register the same
way in urbanpulse's pyproject.toml. A format class may declare ``Options``, a pydantic model of
its options; the config's ``formats.options.<name>`` is validated against it, and a wrong value
stops start-up with a message naming the field. Anything wrong with a plugin itself (cannot be
imported, is not a format) raises :class:`~urbanpulse.errors.PluginError` naming the package.

``BUILTIN_FORMATS`` / ``BUILTIN_SOURCES`` mirror the pyproject entries: a source checkout whose
installed metadata predates a built-in (an editable install made before it was added) still
finds it. A test keeps the two lists equal.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib import import_module, metadata
from typing import Any

from pydantic import BaseModel, ValidationError

from urbanpulse.errors import ConfigError, PluginError

FORMAT_GROUP = "urbanpulse.formats"
SOURCE_GROUP = "urbanpulse.connectors"

BUILTIN_FORMATS: dict[str, str] = {
    "json": "urbanpulse.formats.canonical:CanonicalJsonFormat",
    "senml": "urbanpulse.formats.senml:SenmlJsonFormat",
    "senml_cbor": "urbanpulse.formats.senml:SenmlCborFormat",
    "influx_line": "urbanpulse.formats.line_protocol:LineProtocolFormat",
    "ttn_v3": "urbanpulse.formats.ttn:TtnV3Format",
    "chirpstack_v4": "urbanpulse.formats.chirpstack:ChirpstackV4Format",
    "owntracks": "urbanpulse.formats.owntracks:OwnTracksFormat",
    "sensor_community": "urbanpulse.formats.sensor_community:SensorCommunityFormat",
    "csv": "urbanpulse.formats.csv_columns:CsvFormat",
}
BUILTIN_SOURCES: dict[str, str] = {
    "mqtt": "urbanpulse.connectors.mqtt:MqttSource",
    "kafka": "urbanpulse.connectors.kafka:KafkaSource",
    "replay": "urbanpulse.connectors.replay:ReplaySource",
}


@dataclass(frozen=True)
class PluginInfo:
    """One installed plugin: its name, where it points and which distribution provides it."""

    group: str
    name: str
    value: str
    package: str
    version: str


def installed(group: str) -> dict[str, PluginInfo]:
    """Plugins of ``group`` by name: entry points of installed distributions over the built-ins."""
    builtins = BUILTIN_FORMATS if group == FORMAT_GROUP else BUILTIN_SOURCES if group == SOURCE_GROUP else {}
    try:
        own_version = metadata.version("urbanpulse")
    except metadata.PackageNotFoundError:
        own_version = "source"
    found = {name: PluginInfo(group, name, value, "urbanpulse", own_version) for name, value in builtins.items()}
    # (name, version) per distribution, its METADATA parsed once: a distribution registers several
    # entry points (urbanpulse's own formats), and each parse is ~0.5 ms of a start (``spawn20``)
    named: dict[int, tuple[str, str]] = {}
    for ep in metadata.entry_points(group=group):
        dist = getattr(ep, "dist", None)
        if dist is not None:
            if id(dist) not in named:
                meta = dist.metadata
                named[id(dist)] = (meta["Name"], meta["Version"])
            package, version = named[id(dist)]
        else:
            package, version = ep.module.split(".")[0], "?"
        if package == "urbanpulse" and ep.name in builtins:
            continue  # the checkout's table wins over possibly stale installed metadata
        found[ep.name] = PluginInfo(group, ep.name, ep.value, package, version)
    return found


def load(group: str, name: str) -> tuple[Any, PluginInfo]:
    """The object an entry point names; PluginError naming the package if it cannot be loaded."""
    plugins = installed(group)
    info = plugins.get(name)
    if info is None:
        kind = "format" if group == FORMAT_GROUP else "source"
        raise PluginError(f"unknown {kind} {name!r}; installed: {', '.join(sorted(plugins))} "
                          f"(a plugin package registers under the entry-point group {group!r})")
    module_name, _, attr = info.value.partition(":")
    try:
        obj: Any = import_module(module_name.strip())
        for part in attr.strip().split(".") if attr else ():
            obj = getattr(obj, part)
    except Exception as exc:  # noqa: BLE001 - any import-time failure is the plugin's fault
        raise PluginError(f"plugin {name!r} from package {info.package!r} {info.version} cannot be loaded "
                          f"({info.value}: {type(exc).__name__}: {exc}); reinstall or fix that package") from exc
    return obj, info


def options_model(factory: Any) -> type[BaseModel] | None:
    """The pydantic model a plugin declares for its options: ``Options`` (formats) or ``Config``
    (sources), if any."""
    for attr in ("Options", "Config"):
        model = getattr(factory, attr, None)
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model
    return None


def validate_options(group: str, name: str, factory: Any, options: dict[str, Any] | None,
                     where: str) -> BaseModel | dict[str, Any]:
    """Options checked against the plugin's model; ConfigError naming ``where.<field>``."""
    model = options_model(factory)
    if model is None:
        if options:
            raise ConfigError(f"invalid configuration: {where}: plugin {name!r} takes no options")
        return {}
    try:
        return model.model_validate(options or {})
    except ValidationError as exc:
        problems = "; ".join(f"{where}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from exc


def build_format(name: str, options: dict[str, Any] | None = None, limits: Any = None, catalogue: Any = None,
                 where: str | None = None) -> Any:
    """An instance of format ``name`` with validated options; the result has ``decode(batch)``."""
    factory, info = load(FORMAT_GROUP, name)
    opts = validate_options(FORMAT_GROUP, name, factory, options, where or f"formats.options.{name}")
    kwargs = {"options": opts, "limits": limits, "catalogue": catalogue}
    try:
        params = inspect.signature(factory).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            kwargs = {k: v for k, v in kwargs.items() if k in params}
    except (TypeError, ValueError):
        pass
    try:
        fmt = factory(**kwargs)
    except (ConfigError, PluginError):
        raise
    except Exception as exc:  # noqa: BLE001
        raise PluginError(f"format {name!r} from package {info.package!r} failed to start "
                          f"({type(exc).__name__}: {exc})") from exc
    if not callable(getattr(fmt, "decode", None)):
        raise PluginError(f"format {name!r} from package {info.package!r} has no decode(batch) method; "
                          f"it must follow urbanpulse.formats.base.Format")
    return fmt
