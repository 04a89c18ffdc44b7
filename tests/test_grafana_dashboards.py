"""The provisioned Grafana dashboards validate (issue 13 item 2: "the dashboards' JSON validates").

* Each file is JSON that Grafana's dashboard schema (grafana-foundation-sdk's typed models for
  Grafana 11.4, the version docker-compose.yml runs) reads without dropping anything: a misspelt or
  misplaced key (``gridpos``, ``rawSQL`` at panel level) would be lost in the round trip and fail.
* Structure the schema cannot say: unique uids, titles and panel ids; panels on the 24-column
  grid without overlapping; every datasource reference names a provisioned datasource of the same
  type; SQL targets in code mode with a format; every template variable used is defined (and
  defined before a variable that uses it), every macro is one the PostgreSQL datasource knows.

The SQL itself runs in tests/test_grafana_sql.py, the PromQL in tests/test_grafana_prometheus.py.
"""

from __future__ import annotations

import json
import re

import pytest

import grafana_check as gc

SDK_NOT_MODELLED = {
    # Grafana's UI writes a query variable's text here too; the schema has only `query`
    ("templating", "definition"),
}
#: the schema types an annotation's target as the built-in Grafana datasource's query; an SQL
#: datasource's annotation target is its own query (rawSql, format, ...), which Grafana stores as is
SQL_ANNOTATION_TARGET = {"refId", "editorMode", "format", "rawQuery", "rawSql"}


@pytest.fixture(scope="module")
def boards() -> dict[str, dict]:
    found = gc.dashboards()
    assert {"district.json", "sensor-history.json", "data-quality.json", "ingest-health.json"} <= set(found)
    return found


def test_every_dashboard_file_is_json_an_object_and_tidy():
    for path in sorted(gc.DASHBOARDS.glob("*.json")):
        text = path.read_text()
        board = json.loads(text)
        assert isinstance(board, dict), path.name
        assert text == json.dumps(board, indent=2, ensure_ascii=False) + "\n", \
            f"{path.name}: keep it as json.dumps(indent=2) writes it, so diffs stay readable"


def test_every_dashboard_is_described_in_the_docs(boards):
    doc = (gc.REPO / "docs" / "grafana.md").read_text()
    for name, board in boards.items():
        assert f"### {board['title']} (`{name}`)" in doc, f"docs/grafana.md does not describe {name}"


def _lost_keys(original, decoded, path=()) -> list[tuple[str, ...]]:
    """Keys of ``original`` missing from ``decoded`` (what the typed models did not keep)."""
    lost = []
    if isinstance(original, dict) and isinstance(decoded, dict):
        for key, value in original.items():
            if key not in decoded:
                lost.append((*path, key))
            else:
                lost += _lost_keys(value, decoded[key], (*path, key))
    elif isinstance(original, list) and isinstance(decoded, list):
        assert len(original) == len(decoded), path
        for i, (a, b) in enumerate(zip(original, decoded)):
            lost += _lost_keys(a, b, (*path, str(i)))
    return lost


def test_every_dashboard_reads_through_grafanas_schema_without_losing_a_key(boards):
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    for name, board in boards.items():
        decoded = json.loads(json.dumps(Dashboard.from_json(board), cls=JSONEncoder))
        unexpected = []
        for path in _lost_keys(board, decoded):
            if (path[0], path[-1]) in SDK_NOT_MODELLED and path[1] == "list":
                continue
            if path[:2] == ("annotations", "list") and path[3] == "target" and path[-1] in SQL_ANNOTATION_TARGET:
                continue
            unexpected.append("/".join(path))
        assert not unexpected, f"{name}: Grafana's dashboard schema has no place for {unexpected}"
        assert decoded["panels"] and len(decoded["panels"]) == len(board["panels"])


def test_required_fields_unique_ids_and_the_grid(boards):
    uids, titles = set(), set()
    for name, board in boards.items():
        for key in ("uid", "title", "schemaVersion", "panels", "templating", "time", "annotations"):
            assert key in board, f"{name}: no {key}"
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", board["uid"]), board["uid"]
        assert board["uid"] not in uids and board["title"] not in titles, f"{name}: uid or title used twice"
        uids.add(board["uid"])
        titles.add(board["title"])
        assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
        assert "urbanpulse" in board["tags"] and board["time"]["from"] and board["time"]["to"]
        ids = [p["id"] for p in board["panels"]]
        assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids)), f"{name}: panel ids {ids}"
        cells: dict[tuple[int, int], int] = {}
        for p in board["panels"]:
            assert p["title"] and p["type"] and p.get("description"), f"{name} panel {p['id']}"
            g = p["gridPos"]
            assert all(isinstance(g[k], int) for k in "hwxy") and g["w"] > 0 and g["h"] > 0
            assert g["x"] + g["w"] <= 24, f"{name} panel {p['id']} runs off the 24-column grid"
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{name}: panels {cells[(x, y)]} and {p['id']} overlap"
                    cells[(x, y)] = p["id"]


def test_every_datasource_reference_is_provisioned(boards):
    provisioned = gc.datasources()
    assert {d["type"] for d in provisioned.values()} == {gc.PG_TYPE, gc.PROM_TYPE}
    for name, board in boards.items():
        refs = []
        for p in board["panels"]:
            refs.append((f"panel {p['id']}", p["datasource"]))
            assert p["targets"], f"{name} panel {p['id']} has no query"
            assert len({t["refId"] for t in p["targets"]}) == len(p["targets"]), f"{name} panel {p['id']}: refIds"
            for t in p["targets"]:
                refs.append((f"panel {p['id']} {t['refId']}", t.get("datasource", p["datasource"])))
                assert t.get("datasource", p["datasource"]) == p["datasource"], f"{name} panel {p['id']}: mixed"
        refs += [(f"variable {v['name']}", v["datasource"]) for v in board["templating"]["list"] if v["type"] == "query"]
        refs += [(f"annotation {a['name']}", a["datasource"]) for a in board["annotations"]["list"] if not a.get("builtIn")]
        for where, ref in refs:
            assert ref["uid"] in provisioned, f"{name} {where}: datasource uid {ref['uid']!r} is not provisioned"
            assert ref["type"] == provisioned[ref["uid"]]["type"], f"{name} {where}: type {ref['type']!r}"


def test_queries_are_complete_and_every_variable_and_macro_is_known(boards):
    n_sql = n_prom = 0
    for name, board in boards.items():
        defined = [v["name"] for v in board["templating"]["list"]]
        assert len(defined) == len(set(defined)), f"{name}: a variable defined twice"
        used: set[str] = set()
        for q in gc.queries(name, board):
            assert q.text.strip(), f"{name} {q.where}: empty query"
            if q.is_sql:
                n_sql += 1
                assert q.format in ("table", "time_series"), f"{name} {q.where}: format {q.format!r}"
                unknown = gc.macro_names(q.text) - gc.PG_MACROS
                assert not unknown, f"{name} {q.where}: unknown macros {unknown}"
                if q.format == "time_series":
                    assert re.search(r'AS "time"|\$__timeGroupAlias\(', q.text), f"{name} {q.where}: no time column"
            else:
                n_prom += 1
            refs = {n for n, _ in gc.variable_refs(q.text)} | {n for n, _ in gc.variable_refs(q.where)}
            undefined = refs - set(defined) - gc.BUILTIN_VARIABLES
            assert not undefined, f"{name} {q.where}: uses undefined variables {sorted(undefined)}"
            used |= refs
            if q.kind == "variable":  # Grafana resolves variables in order: only earlier ones
                own = q.where.split()[-1]
                later = {n for n in refs if n in defined and defined.index(n) >= defined.index(own)}
                assert not later, f"{name} {q.where} uses {later}, defined after it"
        for p in board["panels"]:
            text = p["title"] + " " + p.get("description", "")
            undefined = {n for n, _ in gc.variable_refs(text)} - set(defined) - gc.BUILTIN_VARIABLES
            assert not undefined, f"{name} panel {p['id']} title/description: {undefined}"
            used |= {n for n, _ in gc.variable_refs(text)}
            for t in p["targets"]:
                if p["datasource"]["type"] == gc.PG_TYPE:
                    assert t.get("rawQuery") is True and t.get("editorMode") == "code", f"{name} panel {p['id']}"
        assert set(defined) <= used, f"{name}: variables defined but never used: {set(defined) - used}"
    assert n_sql >= 20 and n_prom >= 10, (n_sql, n_prom)


def test_the_variable_helpers_see_what_grafana_sees():
    text = "WHERE a IN ($area) AND s = '${sensor}' AND m = [[metric]] AND $__timeFilter(ts) AND w = ${x:csv}"
    assert gc.variable_refs(text) == [("area", None), ("sensor", None), ("metric", None), ("x", "csv")]
    assert gc.macro_names(text) == {"__timeFilter"}
    assert gc.promql_metric_names(
        'histogram_quantile(0.99, sum by (le, job) (rate(a_b_bucket{job="x", le!~"1"}[5m]))) / on (job) '
        'group_left (instance) up offset 5m or vector(0)') == {"a_b_bucket", "up"}
