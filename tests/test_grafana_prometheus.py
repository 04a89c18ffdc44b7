"""The "Ingest health" dashboard through a real Prometheus (issue 13 item 2: ingest health from
/metrics through Prometheus).

One urbanpulse service (MQTT and Kafka sources; a reading stored from each, one message
quarantined) is scraped by a real Prometheus (Debian's ``prometheus``, 2.42) started from
``config/prometheus.yml`` with only the targets moved to loopback ports. Then:

* the configuration as shipped passes ``promtool check config``;
* every metric a dashboard's PromQL reads is on the service's ``/metrics``;
* every PromQL query of the dashboards, with Grafana's variables filled in (``$instance`` as
  "All" sends it: ``.*``; ``$__rate_interval``), is evaluated by that Prometheus without an error,
  and every panel shows data; the instance variable's ``label_values`` lists the service.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import grafana_check as gc
import services
from service_process import ServiceProcess

pytestmark = pytest.mark.integration

PROMETHEUS_YML = gc.REPO / "config" / "prometheus.yml"
RATE_INTERVAL = "1m"  # what Grafana gives $__rate_interval for a 5 s scrape at a short range


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        services.unavailable(f"{name} is not installed (apt-get install prometheus; .ci/run does)")
    return path


def _query(base: str, expr: str) -> list[dict]:
    r = httpx.get(base + "/api/v1/query", params={"query": expr}, timeout=10)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", f"{expr}: {body.get('error', body)}"
    return body["data"]["result"]


@pytest.fixture(scope="module")
def scraped(tmp_path_factory, mqtt_broker, kafka_bootstrap):
    """(service /metrics text, Prometheus base URL, the service's instance label)."""
    prometheus = _binary("prometheus")
    err = services.check_postgres()
    if err:
        services.unavailable(f"PostgreSQL not reachable: {err}")
    work = tmp_path_factory.mktemp("grafana-prom")
    db_name, dsn = services.create_database(prefix="up_test_grafana_prom")
    topic = f"grafana-{uuid.uuid4().hex[:8]}"
    services.create_topic(kafka_bootstrap, topic)
    host, port = mqtt_broker
    mqtt_topic = f"grafana-{uuid.uuid4().hex[:8]}"
    config = {"database": {"dsn": dsn}, "validation": {"max_age_s": None},
              "mqtt": {"enabled": True, "host": host, "port": port, "client_id": f"grafana-{uuid.uuid4().hex[:8]}",
                       "topics": [f"{mqtt_topic}/#"]},
              "kafka": {"enabled": True, "bootstrap_servers": kafka_bootstrap, "topics": [topic],
                        "group_id": f"grafana-{uuid.uuid4().hex[:8]}"}}
    svc = ServiceProcess(config, work).start()
    prom_proc = None
    try:
        def publish(k: int) -> None:
            now_ms = int(time.time() * 1000)
            services.publish_mqtt(host, port, f"{mqtt_topic}/a", [
                json.dumps({"sensor_id": "g-1", "metric": "pm2_5", "value": 3.5 + k, "ts": now_ms}), b"not json"])
            services.produce_kafka(kafka_bootstrap, topic, [
                json.dumps({"sensor_id": "g-2", "metric": "pm2_5", "value": 4.5 + k, "ts": now_ms})])

        publish(0)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
                svc.metric("urbanpulse_readings_stored_total", source="mqtt") >= 1
                and svc.metric("urbanpulse_readings_stored_total", source="kafka") >= 1
                and svc.metric("urbanpulse_readings_quarantined_total") >= 1):
            time.sleep(0.25)
        text = httpx.get(svc.url + "/metrics", timeout=10).text

        # Prometheus from the shipped configuration, targets on loopback
        cfg = yaml.safe_load(PROMETHEUS_YML.read_text())
        prom_port = services.free_port()
        for job in cfg["scrape_configs"]:
            target = {"urbanpulse": f"127.0.0.1:{svc.port}", "prometheus": f"127.0.0.1:{prom_port}"}[job["job_name"]]
            job["static_configs"] = [{"targets": [target]}]
        (work / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        log = open(work / "prometheus.log", "wb")
        prom_proc = subprocess.Popen(
            [prometheus, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        log.close()
        base = f"http://127.0.0.1:{prom_port}"
        instance = f"127.0.0.1:{svc.port}"
        deadline = time.monotonic() + 90
        scrapes = 0
        while time.monotonic() < deadline:
            assert prom_proc.poll() is None, (work / "prometheus.log").read_text()[-3000:]
            try:
                got = _query(base, 'count_over_time(up{job="urbanpulse"}[5m])')
                scrapes = int(float(got[0]["value"][1])) if got else 0
            except (httpx.HTTPError, AssertionError, json.JSONDecodeError):
                scrapes = 0
            if scrapes == 2:
                publish(1)  # counters move between scrapes: rates are not all zero
            if scrapes >= 4:
                break
            time.sleep(0.5)
        assert scrapes >= 4, f"Prometheus scraped {scrapes} times:\n{(work / 'prometheus.log').read_text()[-3000:]}"
        yield text, base, instance
    finally:
        if prom_proc is not None and prom_proc.poll() is None:
            prom_proc.terminate()
            try:
                prom_proc.wait(15)
            except subprocess.TimeoutExpired:
                prom_proc.kill()
                prom_proc.wait(5)
        svc.stop_quietly()
        services.drop_database(db_name)


def test_the_shipped_prometheus_configuration_is_valid():
    out = subprocess.run([_binary("promtool"), "check", "config", str(PROMETHEUS_YML)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def _exposed_sample_names(text: str) -> set[str]:
    """Sample names /metrics can expose: every sample present, plus each declared family's names."""
    suffixes = {"counter": ["_total", "_created"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count", "_created"],
                "summary": ["", "_sum", "_count", "_created"], "untyped": [""], "info": ["_info"]}
    names = set()
    for fam in text_string_to_metric_families(text):
        names |= {s.name for s in fam.samples}
        names |= {fam.name + suffix for suffix in suffixes.get(fam.type, [""])}
    return names


def _prom_queries() -> list[gc.Query]:
    out = [q for name, board in gc.dashboards().items() for q in gc.queries(name, board)
           if q.datasource.get("type") == gc.PROM_TYPE]
    assert len(out) >= 15, len(out)
    return out


def test_every_promql_metric_is_on_the_services_metrics(scraped):
    text, _, _ = scraped
    assert "urbanpulse_readings_stored_total" in {s.name for f in text_string_to_metric_families(text)
                                                  for s in f.samples}, "the service stored nothing"
    exposed = _exposed_sample_names(text)
    jobs = [j["job_name"] for j in yaml.safe_load(PROMETHEUS_YML.read_text())["scrape_configs"]]
    checked = 0
    for q in _prom_queries():
        if q.kind == "variable":
            continue
        for metric in gc.promql_metric_names(q.text):
            checked += 1
            if metric == "up":  # Prometheus' own series per scrape job, not on /metrics
                assert 'job="urbanpulse"' in q.text and "urbanpulse" in jobs, f"{q.dashboard} {q.where}"
                continue
            assert metric in exposed, f"{q.dashboard} {q.where}: {metric} is not on /metrics"
    assert checked >= 15, checked


def _grafana_expr(text: str) -> str:
    """$instance as the "All" option sends it (allValue), Grafana's interval built-ins."""
    return (text.replace("$instance", ".*").replace("$__rate_interval", RATE_INTERVAL)
            .replace("$__interval", "5s").replace("$__range", "5m"))


def test_every_dashboard_promql_query_evaluates_with_data(scraped):
    _, base, instance = scraped
    by_panel: dict[tuple[str, str], list[int]] = {}
    for q in _prom_queries():
        if q.kind == "variable":
            # label_values(up{job="urbanpulse"}, instance): the label values API with that matcher
            assert q.text == 'label_values(up{job="urbanpulse"}, instance)', q.text
            r = httpx.get(base + "/api/v1/label/instance/values", params={"match[]": 'up{job="urbanpulse"}'},
                          timeout=10).json()
            assert r["status"] == "success" and instance in r["data"], r
            continue
        assert not set(gc.variable_refs(_grafana_expr(q.text))), q.text
        result = _query(base, _grafana_expr(q.text))
        by_panel.setdefault((q.dashboard, q.where.rsplit(" ", 1)[0]), []).append(len(result))
    empty = [k for k, counts in by_panel.items() if not any(counts)]
    assert not empty, f"panels with no data from a scraped service: {empty}"
    up = _query(base, f'up{{job="urbanpulse", instance="{instance}"}}')
    assert [float(r["value"][1]) for r in up] == [1.0]
    stored = _query(base, f'sum by (source) (urbanpulse_readings_stored_total{{instance="{instance}"}})')
    assert {r["metric"]["source"] for r in stored} >= {"mqtt", "kafka"}
