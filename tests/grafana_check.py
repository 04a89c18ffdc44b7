"""The repo's Grafana dashboards as data, and their SQL expanded the way Grafana expands it.

Grafana sends a PostgreSQL panel's query in two steps, and :func:`expand_sql` repeats both:

1. the browser replaces template variables (``$name``, ``${name}``, ``${name:format}``,
   ``[[name]]``) and built-ins (``$__interval``, ``$__interval_ms``, ...). For SQL datasources a
   variable that is multi-value or has "All" becomes a comma-separated list of quoted literals
   (``'a','b'``), a single-value one its value with ``'`` doubled (SqlDatasource.interpolateVariable);
2. the server expands the macros (``$__timeFilter(col)``, ``$__timeGroupAlias(col, 1m)``, ...) as
   the grafana-postgresql-datasource macro engine does, which writes ``$__timeGroup`` as
   ``time_bucket('60.000s',col)`` when the datasource has the TimescaleDB option on and as
   ``floor(extract(epoch from col)/60)*60`` when it does not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
DATASOURCES = REPO / "deploy" / "grafana" / "provisioning" / "datasources"
PG_TYPE = "grafana-postgresql-datasource"
PROM_TYPE = "prometheus"

#: variables Grafana defines itself (never in ``templating.list``)
BUILTIN_VARIABLES = {"__interval", "__interval_ms", "__rate_interval", "__range", "__range_s", "__range_ms",
                     "__from", "__to", "__dashboard", "__org", "__user", "__timezone"}
#: the macros of the grafana-postgresql-datasource engine
PG_MACROS = {"__time", "__timeEpoch", "__timeFilter", "__timeFrom", "__timeTo", "__timeGroup", "__timeGroupAlias",
             "__unixEpochFilter", "__unixEpochNanoFilter", "__unixEpochNanoFrom", "__unixEpochNanoTo",
             "__unixEpochGroup", "__unixEpochGroupAlias"}

_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]")
_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")  # the engine's own pattern: no ')' inside


def dashboards() -> dict[str, dict]:
    """File name -> parsed dashboard JSON."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def datasources() -> dict[str, dict]:
    """uid -> provisioned datasource."""
    out = {}
    for path in sorted(DATASOURCES.glob("*.yaml")):
        for ds in yaml.safe_load(path.read_text())["datasources"]:
            out[ds["uid"]] = ds
    return out


@dataclass(frozen=True)
class Query:
    """One query a dashboard makes: a panel target, an annotation or a variable's query."""

    dashboard: str
    where: str          # e.g. "panel 3 'Gaps' A", "variable metric", "annotation Alerts"
    kind: str           # "panel", "annotation", "variable"
    datasource: dict
    text: str           # rawSql or PromQL
    format: str         # "table" / "time_series" for SQL; "" otherwise

    @property
    def is_sql(self) -> bool:
        return self.datasource.get("type") == PG_TYPE


def queries(board_name: str, board: dict) -> Iterator[Query]:
    """Every query of a dashboard, with the datasource it goes to."""
    for panel in board.get("panels", []):
        for t in panel.get("targets", []):
            ds = t.get("datasource") or panel.get("datasource") or {}
            text = t.get("rawSql") if ds.get("type") == PG_TYPE else t.get("expr")
            yield Query(board_name, f"panel {panel['id']} {panel['title']!r} {t.get('refId')}", "panel", ds,
                        text or "", t.get("format", ""))
    for ann in board.get("annotations", {}).get("list", []):
        if ann.get("builtIn"):
            continue
        target = ann.get("target", {})
        yield Query(board_name, f"annotation {ann['name']}", "annotation", ann.get("datasource", {}),
                    target.get("rawSql") or target.get("expr") or "", target.get("format", "table"))
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        q = var["query"]
        text = q if isinstance(q, str) else (q.get("rawSql") or q.get("query") or "")
        yield Query(board_name, f"variable {var['name']}", "variable", var.get("datasource", {}), text, "table")


def variable_refs(text: str) -> list[tuple[str, str | None]]:
    """(name, format) of every template variable reference in ``text``; macros are not variables."""
    out = []
    for m in _VARIABLE.finditer(text):
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(5)
        if m.group(1) and text[m.end():m.end() + 1] == "(":
            continue  # $__timeFilter(...) and friends: macros, expanded by the server
        out.append((name, fmt))
    return out


def macro_names(text: str) -> set[str]:
    return {m.group(1) for m in _MACRO.finditer(text)}


@dataclass(frozen=True)
class TimeRange:
    """The dashboard time range and the interval Grafana derived from it for a panel."""

    start: datetime
    end: datetime
    interval_ms: int

    @property
    def interval(self) -> str:
        """``$__interval`` as Grafana writes it (largest whole unit)."""
        ms = self.interval_ms
        for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
            if ms % size == 0:
                return f"{ms // size}{unit}"
        return f"{ms}ms"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def interpolate(text: str, variables: Mapping[str, dict], values: Mapping[str, str | Sequence[str]],
                rng: TimeRange) -> str:
    """Step 1: template variables and built-ins, as the browser replaces them for an SQL datasource."""
    builtins = {"__interval": rng.interval, "__interval_ms": str(rng.interval_ms),
                "__rate_interval": rng.interval,
                "__from": str(int(rng.start.timestamp() * 1000)), "__to": str(int(rng.end.timestamp() * 1000)),
                "__range_s": str(int((rng.end - rng.start).total_seconds()))}

    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(5)
        if m.group(1) and m.string[m.end():m.end() + 1] == "(":
            return m.group(0)  # a macro
        if name in builtins:
            return builtins[name]
        if name not in variables:
            raise KeyError(f"undefined variable ${name}")
        var, value = variables[name], values[name]
        items = [value] if isinstance(value, str) else list(value)
        if fmt == "singlequote" or fmt == "sqlstring":
            return ",".join(_quote(v) for v in items)
        if fmt == "csv":
            return ",".join(items)
        if fmt is not None:
            raise ValueError(f"format {fmt} is not handled by this test helper")
        if var.get("multi") or var.get("includeAll") or not isinstance(value, str):
            return ",".join(_quote(v) for v in items)
        return value.replace("'", "''")

    return _VARIABLE.sub(one, text)


def _seconds(interval: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", interval.strip().strip("'"))
    if m is None:
        raise ValueError(f"cannot parse interval {interval!r}")
    n, unit = float(m.group(1)), m.group(2)
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]


def _rfc3339(t: datetime) -> str:
    s = t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return s + "Z"


def _format_g(x: float) -> str:
    """Go's %v of a float64 (integers without a fraction, as in the engine's floor(...)/300)*300)."""
    return str(int(x)) if x == int(x) else repr(x)


def expand_macros(text: str, rng: TimeRange, timescaledb: bool) -> str:
    """Step 2: the server's macro engine (grafana-postgresql-datasource, macros.go)."""

    def evaluate(name: str, args: list[str]) -> str:
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{_rfc3339(rng.start)}' AND '{_rfc3339(rng.end)}'"
        if name == "__timeFrom":
            return f"'{_rfc3339(rng.start)}'"
        if name == "__timeTo":
            return f"'{_rfc3339(rng.end)}'"
        if name in ("__timeGroup", "__timeGroupAlias"):
            if len(args) < 2:
                raise ValueError(f"macro {name} needs a time column and an interval")
            s = _seconds(args[1])
            group = f"time_bucket('{s:.3f}s',{args[0]})" if timescaledb else \
                f"floor(extract(epoch from {args[0]})/{_format_g(s)})*{_format_g(s)}"
            return group + (' AS "time"' if name == "__timeGroupAlias" else "")
        if name == "__unixEpochFilter":
            return f"{args[0]} >= {int(rng.start.timestamp())} AND {args[0]} <= {int(rng.end.timestamp())}"
        raise ValueError(f"unknown macro {name!r}")

    def one(m: re.Match) -> str:
        name, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
        if name == "__timeGroup" and m.string[m.end():m.end() + 1] == ",":
            name = "__timeGroupAlias"  # the engine's pre-5.3 compatibility rule
        return evaluate(name, args)

    return _MACRO.sub(one, text)


def expand_sql(text: str, variables: Mapping[str, dict], values: Mapping[str, str | Sequence[str]],
               rng: TimeRange, timescaledb: bool) -> str:
    """A panel's rawSql as the database receives it from Grafana."""
    return expand_macros(interpolate(text, variables, values, rng), rng, timescaledb)


# -- PromQL: the metric names a query reads ----------------------------------------------------------

_PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
                    "unless", "atan2", "inf", "nan"}
_PROMQL_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers outside label matchers, ranges and
    strings that are neither functions, aggregations, keywords nor grouping labels."""
    tokens = re.findall(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|\{[^}]*\}|\[[^\]]*\]|[A-Za-z_:][A-Za-z0-9_:]*'
                        r'|(?:\d+(?:ms|[smhdwy]))+|\d+(?:\.\d+)?(?:e[+-]?\d+)?|\S', expr)
    names, i = set(), 0
    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok.lower() in _PROMQL_GROUPING and nxt == "(":
            depth, i = 0, i + 1  # skip the label list
            while i < len(tokens):
                depth += tokens[i] == "("
                depth -= tokens[i] == ")"
                i += 1
                if depth == 0:
                    break
            continue
        aggregation = nxt.lower() in ("by", "without")  # sum by (le) (...): an operator, not a metric
        if re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", tok) and nxt != "(" and not aggregation \
                and tok.lower() not in _PROMQL_KEYWORDS:
            names.add(tok)
        i += 1
    return names
