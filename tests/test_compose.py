"""docker-compose.yml against the files it mounts (issue 13 item 2), checked without Docker.

There is no Docker engine on CI, so the compose file is read as data: every host path it mounts
or builds from exists in the repo; every port, host name, topic and credential it names agrees
with the configuration that uses it (config/urbanpulse.compose.yaml, config/mosquitto.compose.conf,
config/prometheus.yml, the Grafana datasource provisioning, deploy/postgres/*.sql); images are
pinned; long-running services have healthchecks; start order is by ``depends_on`` conditions.
Each check names the two places that disagree, so a failure says what to fix.
"""

from __future__ import annotations

import base64
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from urbanpulse.config import load_settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return _load(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


def _host_path(spec: str) -> tuple[Path, str] | None:
    """(host path, container path) of a short-syntax bind mount; None for a named volume."""
    source, target = spec.split(":")[:2]
    if not source.startswith((".", "/")):
        return None
    return (REPO / source).resolve(), target


def _mounts(service: dict) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts."""
    out = {}
    for spec in service.get("volumes", []):
        bind = _host_path(spec)
        if bind is not None:
            out[bind[1]] = bind[0]
    return out


def _mounted(service: dict, container_path: str) -> Path:
    """The host file behind ``container_path`` in a service (directly or inside a mounted dir)."""
    for target, host in sorted(_mounts(service).items(), key=lambda kv: -len(kv[0])):
        if container_path == target:
            return host
        if container_path.startswith(target.rstrip("/") + "/"):
            return host / container_path[len(target.rstrip("/")) + 1:]
    raise AssertionError(f"{container_path} is not mounted from the repo (mounts: {sorted(_mounts(service))})")


def _published(service: dict) -> dict[int, int]:
    """Container port -> host port of a service's ``ports``."""
    out = {}
    for spec in service.get("ports", []):
        parts = str(spec).split(":")
        out[int(parts[-1].split("/")[0])] = int(parts[-2])
    return out


def _command(service: dict) -> list[str]:
    cmd = service.get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _flag(args: list[str], name: str) -> str:
    assert name in args, f"{name} missing from {args}"
    return args[args.index(name) + 1]


def _healthcheck_text(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test[1:]) if isinstance(test, list) else test


@pytest.fixture(scope="module")
def settings():
    return load_settings(REPO / "config" / "urbanpulse.compose.yaml")


def test_the_compose_file_is_valid_compose_specification():
    """Parsed by compose_spec (the Rust implementation of the Compose Specification, strict: an
    unknown key, a bad duration, port or depends_on condition is an error), as Docker would."""
    from compose_spec import PyCompose

    parsed = PyCompose.from_yaml(COMPOSE_FILE.read_text())
    assert sorted(parsed.service_names()) == sorted(_load(COMPOSE_FILE)["services"])
    with pytest.raises(Exception, match="healthchek"):  # the parser does reject what Docker would
        PyCompose.from_yaml(COMPOSE_FILE.read_text().replace("    healthcheck:", "    healthchek:", 1))


# -- every path -----------------------------------------------------------------------------------


def test_every_host_path_the_compose_file_names_exists(services):
    named = []
    for name, svc in services.items():
        for spec in svc.get("volumes", []):
            bind = _host_path(spec)
            if bind is not None:
                named.append((name, bind[0]))
        if "build" in svc:
            ctx = svc["build"] if isinstance(svc["build"], str) else svc["build"].get("context", ".")
            dockerfile = "Dockerfile" if isinstance(svc["build"], str) else svc["build"].get("dockerfile", "Dockerfile")
            named.append((name, (REPO / ctx / dockerfile).resolve()))
    assert len(named) >= 6, named
    missing = [(n, str(p.relative_to(REPO))) for n, p in named if not p.exists()]
    assert not missing, f"docker-compose.yml names paths that are not in the repo: {missing}"
    assert all(p.is_relative_to(REPO) for _, p in named), "a bind mount reaches outside the repo"


def test_the_dockerfile_copies_what_exists_and_the_image_has_its_default_config(services):
    lines = (REPO / "Dockerfile").read_text().splitlines()
    copies = [line.split()[1:-1] for line in lines if line.startswith("COPY ")]
    assert copies, "the Dockerfile copies nothing"
    ignored = {p.strip().rstrip("/") for p in (REPO / ".dockerignore").read_text().splitlines()
               if p.strip() and not p.startswith("#")}
    for sources in copies:
        for src in sources:
            assert (REPO / src).exists(), f"Dockerfile: COPY {src}: not in the repo"
            assert src.rstrip("/") not in ignored, f"Dockerfile: COPY {src}, which .dockerignore leaves out"
    cmd = next(line for line in lines if line.startswith("CMD "))
    config = re.search(r'"--config", "(/app/[^"]+)"', cmd).group(1)
    assert (REPO / config.removeprefix("/app/")).exists() and any("config" in s for c in copies for s in c)
    assert services["urbanpulse"]["build"] == "." and "python" in services["urbanpulse"]["healthcheck"]["test"]
    assert next(line for line in lines if line.startswith("FROM ")).split()[1].startswith("python:3.11")


def test_the_files_the_containers_are_told_to_read_are_mounted(services):
    """Paths given on command lines point at mounted files of the repo."""
    up = services["urbanpulse"]
    assert _mounted(up, _flag(_command(up), "--config")).exists()
    mq = services["mosquitto"]
    assert _mounted(mq, _flag(_command(mq), "-c")) == REPO / "config" / "mosquitto.compose.conf"
    prom = services["prometheus"]
    cfg = next(a.split("=", 1)[1] for a in _command(prom) if a.startswith("--config.file="))
    assert _mounted(prom, cfg) == REPO / "config" / "prometheus.yml"
    grants = services["db-grants"]
    files = re.findall(r"-f (\S+)", " ".join(_command(grants)))
    assert files, _command(grants)
    for f in files:
        assert _mounted(grants, f).exists(), f
    gf = services["grafana"]
    assert _mounted(gf, "/etc/grafana/provisioning/datasources").is_dir()
    provider = _load(_mounted(gf, "/etc/grafana/provisioning/dashboards") / "urbanpulse.yaml")["providers"][0]
    dashboards = _mounted(gf, provider["options"]["path"])
    assert sorted(p.name for p in dashboards.glob("*.json")), f"no dashboards under {dashboards}"


# -- images, healthchecks, start order ---------------------------------------------------------------


def test_images_are_pinned(services):
    for name, svc in services.items():
        image = svc.get("image")
        assert image or "build" in svc, f"{name}: neither image nor build"
        if image is None:
            continue
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: image {image!r} has no tag (it would pull latest)"
        assert tag != "latest" and not tag.startswith("latest-"), f"{name}: image {image!r} is not pinned"
        assert re.search(r"\d", tag) or "build" in svc, f"{name}: tag {tag!r} names no version"


def _one_shot(svc: dict) -> bool:
    return str(svc.get("restart", "")) == "no"


def test_long_running_services_have_healthchecks_and_one_shots_do_not_restart(services):
    for name, svc in services.items():
        if _one_shot(svc):
            assert "healthcheck" not in svc, f"{name} runs once; it needs no healthcheck"
            continue
        hc = svc.get("healthcheck")
        assert hc, f"{name} has no healthcheck: nothing can wait for it to be ready"
        assert isinstance(hc["test"], list) and hc["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: {hc['test']}"
        assert hc.get("retries", 0) >= 3 and hc.get("interval"), f"{name}: {hc}"


def test_start_order_waits_on_health_and_completion(services):
    edges = {}
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on as a list starts it without waiting for health"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            cond = spec["condition"]
            if cond == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy; it has no healthcheck"
            elif cond == "service_completed_successfully":
                assert _one_shot(services[dep]), f"{name} waits for {dep} to finish, but {dep} restarts"
            else:
                pytest.fail(f"{name} -> {dep}: condition {cond!r} does not wait for readiness")
            edges.setdefault(name, set()).add((dep, cond))
    assert {("timescaledb", "service_healthy"), ("mosquitto", "service_healthy"), ("kafka", "service_healthy"),
            ("kafka-init", "service_completed_successfully")} <= edges["urbanpulse"]
    assert ("kafka", "service_healthy") in edges["kafka-init"]
    assert ("urbanpulse", "service_healthy") in edges["db-grants"]  # the schema exists before its grants
    assert {("db-grants", "service_completed_successfully"), ("prometheus", "service_healthy")} <= edges["grafana"]
    # no cycles: a topological order exists
    order, pending = [], dict(edges)
    ready = [s for s in services if s not in pending]
    while ready:
        order.append(ready.pop())
        for s in list(pending):
            if all(d in order for d, _ in pending[s]):
                ready.append(s)
                del pending[s]
    assert not pending, f"depends_on cycle among {sorted(pending)}"


# -- every port and name --------------------------------------------------------------------------------


def test_api_port_healthcheck_and_published_port_agree_with_the_config(services, settings):
    up = services["urbanpulse"]
    assert settings.api.enabled and settings.api.host == "0.0.0.0", "containers reach the API on the compose network"
    assert settings.api.port in _published(up), f"api.port {settings.api.port} not published: {up['ports']}"
    url = re.search(r"http://[^'\" ]+", _healthcheck_text(up)).group(0)
    assert urlsplit(url).port == settings.api.port and urlsplit(url).path == "/health", url
    assert settings.api.open_data is False, "the compose API must not answer reads without a key"


def test_mqtt_listener_agrees_with_the_config(services, settings):
    conf = (REPO / "config" / "mosquitto.compose.conf").read_text()
    listeners = re.findall(r"^listener\s+(\d+)(?:\s+(\S+))?", conf, re.M)
    assert len(listeners) == 1, listeners
    port, bind = int(listeners[0][0]), listeners[0][1]
    assert bind in ("", "0.0.0.0"), f"mosquitto listens on {bind}: other containers cannot reach it"
    mq = services["mosquitto"]
    assert port in _published(mq), (port, mq["ports"])
    assert settings.mqtt.enabled and settings.mqtt.host == "mosquitto" and settings.mqtt.port == port
    hc = shlex.split(_healthcheck_text(mq))
    assert int(_flag(hc, "-p")) == port
    persistence = re.search(r"^persistence_location\s+(\S+)", conf, re.M).group(1)
    targets = [spec.split(":")[1] for spec in mq["volumes"] if not spec.startswith((".", "/"))]
    assert persistence.rstrip("/") in targets, f"persistence_location {persistence} is not on a volume: {targets}"
    # the compose copy differs from config/mosquitto.conf only where a container needs it to
    base = (REPO / "config" / "mosquitto.conf").read_text().splitlines()
    ours = [line for line in conf.splitlines() if not line.startswith("# Generated")]
    differ = [(a, b) for a, b in zip(base, ours) if a != b]
    assert len(base) == len(ours) and all(a.split()[0] in ("listener", "persistence_location") for a, _ in differ), differ


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    out = {}
    for item in value.split(","):
        name, _, rest = item.partition("://")
        host, _, port = rest.rpartition(":")
        out[name] = (host, int(port))
    return out


def test_kafka_has_a_listener_for_containers_and_one_for_the_host(services, settings):
    kafka = services["kafka"]
    env = kafka["environment"]
    listeners, advertised = _listeners(env["KAFKA_LISTENERS"]), _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) == set(protocols), (listeners, protocols)
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners and controller not in advertised
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:{listeners[controller][1]}"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    for name, (_, port) in advertised.items():
        assert listeners[name][1] == port, f"{name} advertised on {port} but bound on {listeners[name][1]}"
    by_host = {host: (name, port) for name, (host, port) in advertised.items()}
    assert set(by_host) == {"kafka", "localhost"}, advertised
    host_port = by_host["localhost"][1]
    assert _published(kafka).get(host_port) == host_port, \
        f"host clients are told localhost:{host_port}; publish it as {host_port}:{host_port}"
    inside = f"kafka:{by_host['kafka'][1]}"
    assert by_host["kafka"][1] not in _published(kafka), "the container listener is not for the host"
    assert settings.kafka.enabled and settings.kafka.bootstrap_servers == inside
    init = services["kafka-init"]
    args = _command(init)
    assert _flag(args, "--bootstrap-server") == inside
    assert f"--bootstrap-server {inside}" in _healthcheck_text(kafka)
    assert init["image"] == kafka["image"]
    assert [_flag(args, "--topic")] == list(settings.kafka.topics), "kafka-init creates another topic than urbanpulse reads"
    assert "--if-not-exists" in args and env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # KRaft formats its log with CLUSTER_ID: a base64url UUID (16 bytes, 22 characters)
    assert len(env["CLUSTER_ID"]) == 22 and len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16


def test_database_names_agree_with_the_dsn_and_the_grafana_datasource(services):
    db = services["timescaledb"]
    env = db["environment"]
    raw = _load(REPO / "config" / "urbanpulse.compose.yaml")["database"]["dsn"]
    dsn = urlsplit(raw)
    assert (dsn.hostname, dsn.username, dsn.password, dsn.path.lstrip("/")) == \
        ("timescaledb", env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"])
    assert dsn.port in _published(db)
    assert f"-p {dsn.port}" in _healthcheck_text(db) and f"-d {env['POSTGRES_DB']}" in _healthcheck_text(db)
    grants = services["db-grants"]["environment"]
    assert (grants["PGHOST"], int(grants["PGPORT"]), grants["PGUSER"], grants["PGPASSWORD"], grants["PGDATABASE"]) == \
        (dsn.hostname, dsn.port, dsn.username, dsn.password, dsn.path.lstrip("/"))
    assert services["db-grants"]["image"] == db["image"], "psql of the server's own version"

    gf = services["grafana"]
    ds_dir = _mounted(gf, "/etc/grafana/provisioning/datasources")
    sources = {d["uid"]: d for f in ds_dir.glob("*.yaml") for d in _load(f)["datasources"]}
    pg = next(d for d in sources.values() if d["type"] == "grafana-postgresql-datasource")
    assert pg["url"] == f"{dsn.hostname}:{dsn.port}" and pg["jsonData"]["database"] == env["POSTGRES_DB"]
    role_sql = (REPO / "deploy" / "postgres" / "grafana_reader.sql").read_text()
    assert f"CREATE ROLE {pg['user']} " in role_sql, "the datasource logs in as a role the grants file does not make"
    var = re.fullmatch(r"\$\{(\w+)\}", pg["secureJsonData"]["password"]).group(1)
    assert gf["environment"][var] == grants[var], f"Grafana and db-grants disagree on {var}"
    assert pg["jsonData"]["timescaledb"] is True and db["image"].startswith("timescale/timescaledb:")


def test_prometheus_scrapes_the_api_port_and_grafana_reads_prometheus(services, settings):
    prom_cfg = _load(REPO / "config" / "prometheus.yml")
    job = next(j for j in prom_cfg["scrape_configs"] if j["job_name"] == "urbanpulse")
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"urbanpulse:{settings.api.port}"], targets
    prom = services["prometheus"]
    port = urlsplit(re.search(r"http://\S+", _healthcheck_text(prom)).group(0)).port
    assert port in _published(prom)
    ds_dir = _mounted(services["grafana"], "/etc/grafana/provisioning/datasources")
    sources = [d for f in ds_dir.glob("*.yaml") for d in _load(f)["datasources"]]
    p = next(d for d in sources if d["type"] == "prometheus")
    assert urlsplit(p["url"]).hostname == "prometheus" and urlsplit(p["url"]).port == port
    assert p["jsonData"]["timeInterval"] == job.get("scrape_interval", prom_cfg["global"]["scrape_interval"])
    gf_port = urlsplit(re.search(r"http://\S+", _healthcheck_text(services["grafana"])).group(0)).port
    assert gf_port in _published(services["grafana"])


def test_every_service_name_used_as_a_host_is_a_service(services, settings):
    hosts = {urlsplit(load_settings(REPO / "config" / "urbanpulse.compose.yaml").database.dsn).hostname,
             settings.mqtt.host, settings.kafka.bootstrap_servers.split(":")[0]}
    prom_cfg = _load(REPO / "config" / "prometheus.yml")
    hosts |= {t.split(":")[0] for j in prom_cfg["scrape_configs"] for sc in j["static_configs"] for t in sc["targets"]}
    hosts.discard("localhost")
    assert hosts <= set(services), hosts - set(services)


def test_the_first_admin_key_is_documented(services):
    """No anonymous writes: the compose API needs keys, and the docs say how to make the first one."""
    doc = (REPO / "docs" / "grafana.md").read_text()
    cmd = "docker compose exec urbanpulse urbanpulse keys create --role admin"
    assert cmd in doc and "--config /app/config/urbanpulse.compose.yaml" in doc
    assert "urbanpulse keys create --role admin" in COMPOSE_FILE.read_text()
