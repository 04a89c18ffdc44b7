"""``urbanpulse plugins`` (what is installed, with versions) and ``urbanpulse decode`` (what a
payload becomes, readings and rejections with reasons, without a service or database)."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from urbanpulse.cli_options import add_log_level
from urbanpulse.errors import ConfigError, PluginError


def add_plugin_parsers(sub: Any) -> None:
    """Register the ``plugins`` and ``decode`` subcommands."""
    pl = sub.add_parser("plugins", help="list installed format and source plugins with their versions",
                        description="Formats (entry-point group urbanpulse.formats) and sources "
                        "(urbanpulse.connectors), built-in and from installed packages, with the package, "
                        "version, time unit and options each format takes.")
    pl.add_argument("--json", action="store_true", help="machine-readable output")
    dec = sub.add_parser(
        "decode", help="show what a payload becomes in a format: readings and rejections with reasons",
        description="Decode FILE (one message; '-' reads stdin) with format NAME and validate it against the "
        "metric catalogue exactly as the service would, without a service or database. Options come from "
        "--config (formats.options.NAME) or --options JSON.",
        epilog="Example: urbanpulse decode --format ttn_v3 uplink.json --topic v3/app/devices/dev1/up\n\n"
        "Exit status: 0 every reading valid, 1 something rejected (listed with its reason), 2 bad option, "
        "unreadable file or invalid configuration.", formatter_class=argparse.RawDescriptionHelpFormatter)
    dec.add_argument("file", type=Path, metavar="FILE", help="the message to decode ('-': standard input)")
    dec.add_argument("--format", required=True, metavar="NAME", help="format name (see `urbanpulse plugins`)")
    dec.add_argument("--topic", default=None, help="topic the message arrived on (some formats read it)")
    dec.add_argument("--options", default=None, metavar="JSON", help="format options as JSON (over the config's)")
    dec.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration (formats, validation)")
    dec.add_argument("--lines", action="store_true", help="FILE holds one message per line (NDJSON)")
    add_log_level(dec, "WARNING")


def run_plugins(args: argparse.Namespace) -> int:
    """Print the installed plugins."""
    from urbanpulse import plugins

    rows = []
    for group, kind in ((plugins.FORMAT_GROUP, "format"), (plugins.SOURCE_GROUP, "source")):
        for name, info in sorted(plugins.installed(group).items()):
            row = {"kind": kind, "name": name, "package": info.package, "version": info.version, "target": info.value}
            try:
                factory, _ = plugins.load(group, name)
                if kind == "format":
                    row["time_unit"] = getattr(factory, "time_unit", "")
                model = plugins.options_model(factory)
                row["options"] = sorted(model.model_fields) if model else []
            except Exception as exc:  # noqa: BLE001 - listing must show broken plugins too
                row["error"] = str(exc)
            rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        extra = f"  [{r['error']}]" if "error" in r else \
            (f"  time: {r['time_unit']};" if r["kind"] == "format" else "") + f"  options: {', '.join(r['options']) or '-'}"
        print(f"{r['kind']:7} {r['name']:18} {r['package']} {r['version']}  ({r['target']}){extra}")
    return 0


def run_decode(args: argparse.Namespace, settings: Any) -> int:
    """Decode and validate one file's messages; print readings and rejections as JSON lines."""
    from urbanpulse.formats.base import DecodeLimits, MessageBatch
    from urbanpulse.plugins import build_format
    from urbanpulse.quality.catalogue import MetricCatalogue
    from urbanpulse.quality.validate import ReadingValidator, TimeRules

    v = settings.validation
    options = dict(settings.formats.options.get(args.format) or {})
    if args.options:
        try:
            given = json.loads(args.options)
        except ValueError as exc:
            raise ConfigError(f"--options is not JSON: {exc}") from exc
        if not isinstance(given, dict):
            raise ConfigError(f"--options must be a JSON object of option: value, e.g. '{{\"sensor_id\": \"dev_eui\"}}'"
                              f" (`urbanpulse plugins` lists each format's options), got {type(given).__name__}")
        options.update(given)
    if settings.formats.metric_names and args.format != "json":
        options["metric_names"] = {**settings.formats.metric_names, **options.get("metric_names", {})}
    catalogue = MetricCatalogue.load(v.catalogue, v.metrics)
    fmt = build_format(args.format, options or None, DecodeLimits(v.max_payload_bytes, v.max_json_depth), catalogue,
                       where=f"--options / formats.options.{args.format}")
    try:
        data = Path("/dev/stdin").read_bytes() if str(args.file) == "-" else args.file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.strerror}") from exc
    payloads = [line for line in data.split(b"\n") if line.strip()] if args.lines else [data]
    batch = MessageBatch(source="decode", payloads=payloads, topics=[args.topic or ""] * len(payloads),
                         received_ns=time.time_ns())
    decoded = _decode_or_explain(fmt, batch, args.format)
    raw_of = getattr(fmt, "raw_of", None)
    validator = ReadingValidator(catalogue, TimeRules(v.max_future_skew_s, v.max_age_s, v.min_event_time_s, v.max_message_days))
    out = validator.validate(batch, decoded, (lambda k: raw_of(batch, decoded, k)) if raw_of else (lambda k: b""))
    r = out.readings
    for k in range(len(r)):
        reading = {"reading": {"sensor_id": r.sensor_id[k], "metric": r.metric[k],
                               "ts": _iso(int(r.ts_us[k])), "value": float(r.value[k])}}
        if r.unit[k] is not None:
            reading["reading"]["unit"] = r.unit[k]
        if not math.isnan(float(r.lat[k])):
            reading["reading"].update(lat=float(r.lat[k]), lon=float(r.lon[k]))
        print(json.dumps(reading, ensure_ascii=False))
    for rej in out.rejections:
        print(json.dumps({"rejected": {"reason": rej.reason.value, "detail": rej.detail, "item": rej.item,
                                       "payload": rej.payload[:200].decode("utf-8", "replace")}}, ensure_ascii=False))
    print(f"# {len(r)} readings, {len(out.rejections)} rejections", flush=True)
    return 0 if not out.rejections else 1


def _decode_or_explain(fmt: Any, batch: Any, name: str) -> Any:  # noqa: ANN401 - a Format and its Decoded
    """``fmt.decode(batch)``; a format that raises (the contract says it never does) is reported as the plugin's
    bug in one line, not a traceback (the service itself quarantines such a message as ``decode_error``)."""
    from urbanpulse.formats.base import describe_exception

    try:
        return fmt.decode(batch)
    except Exception as exc:  # noqa: BLE001 - whatever a plugin raises is reported, not re-raised
        raise PluginError(f"format {name!r} raised on this input ({describe_exception(exc)}): its decode() must "
                          f"return rejections, never raise (docs/connectors.md, format contract); the service "
                          f"quarantines such a message as decode_error") from exc


def _iso(ts_us: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts_us / 1e6, timezone.utc).isoformat()
