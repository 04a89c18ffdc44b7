"""Shared fixtures: real PostgreSQL, Tansu (Kafka protocol) and Mosquitto.

If a service cannot be started or reached the test is skipped with the reason, except under
``CI=true`` where it fails: CI must never pass by skipping the integration tests.

Fixtures
  pg_dsn              session  str   DSN of the server's ``postgres`` database (127.0.0.1:5432)
  fresh_db            function str   DSN of a new, empty, uniquely named database (dropped after)
  kafka_bootstrap     session  str   "127.0.0.1:PORT" of a private Tansu broker (memory storage)
  mqtt_broker         session  (host, port) of a private mosquitto run from config/mosquitto.conf
  mosquitto           session  services.Mosquitto behind mqtt_broker (.restart(), .log, .workdir)
  fresh_mosquitto     function services.Mosquitto of its own, for tests that restart/kill it
  system_mqtt         session  ("127.0.0.1", 1883), the machine's mosquitto, checked to answer
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import services  # noqa: E402
from hypothesis import settings as _hypothesis_settings  # noqa: E402

# Under CI=true the property tests draw the same examples on every run (derandomize), so a CI
# verdict is reproducible and a red run can be replayed; a developer's run draws new ones each time
# (hypothesis's default), which is where new counterexamples are found and then kept as tests.
_hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if services.in_ci():
    _hypothesis_settings.load_profile("ci")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the Numba kernels (or load them from cache) before any test starts a service:
    a fresh checkout's first compile takes ~17 s, which a service start-up timeout must not pay."""
    from urbanpulse.analytics import compile_kernels

    compile_kernels()


@pytest.fixture(autouse=True)
def _fresh_kafka_inflation_budget() -> None:
    """Each test begins with an empty Kafka inflation budget (connectors/kafka_inflate.py), as each
    getmany of the Kafka source does: the budget is process-wide, and bytes one test inflated must
    not make a later test's takes defer (benchmarks/README.md ``hdr35``). Not imported if unused."""
    inflate = sys.modules.get("urbanpulse.connectors.kafka_inflate")
    if inflate is not None:
        inflate.begin_fetch()


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    err = services.check_postgres(services.PG_DSN)
    if err is not None:
        services.unavailable(f"PostgreSQL not reachable at {services.PG_DSN}: {err}")
    return services.PG_DSN


@pytest.fixture
def fresh_db(pg_dsn: str):
    try:
        name, dsn = services.create_database(pg_dsn)
    except Exception as exc:  # noqa: BLE001
        services.unavailable(f"cannot CREATE DATABASE on {pg_dsn}: {exc}")
    try:
        yield dsn
    finally:
        services.drop_database(name, pg_dsn)


@pytest.fixture(scope="module")
def migrated_db(pg_dsn: str):
    """A migrated database shared by one module's tests (commands that only read it), dropped after the module."""
    with services.migrated_database(pg_dsn) as url:
        yield url


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory) -> str:
    try:
        broker = services.start_tansu(tmp_path_factory.mktemp("tansu"))
    except Exception as exc:  # noqa: BLE001
        services.unavailable(f"cannot start Tansu (Kafka-protocol broker): {exc}")
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def _start_mosquitto(workdir: Path) -> services.Mosquitto:
    try:
        return services.start_mosquitto(workdir)
    except Exception as exc:  # noqa: BLE001
        services.unavailable(f"cannot start a private mosquitto: {exc}")
        raise  # unreachable; keeps type checkers happy


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory) -> services.Mosquitto:
    broker = _start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def mqtt_broker(mosquitto: services.Mosquitto) -> tuple[str, int]:
    return (mosquitto.host, mosquitto.port)


@pytest.fixture
def fresh_mosquitto(tmp_path) -> services.Mosquitto:
    broker = _start_mosquitto(tmp_path / "mosquitto")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def system_mqtt() -> tuple[str, int]:
    host, port = services.SYSTEM_MQTT
    if not services.wait_port(host, port, timeout=3):
        services.unavailable(f"system mosquitto not answering on {host}:{port} "
                             "(start it: mosquitto -d -c /etc/mosquitto/mosquitto.conf)")
    return (host, port)


def _fail_skip_in_ci(report) -> None:
    """Under CI=true nothing may be skipped: a skip anywhere (a missing service, dataset or
    binary; per test or a whole module) becomes a failure that shows the skip reason."""
    if not (services.in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true (CI must run everything): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.fixture
async def history_service(fresh_db: str, request):  # noqa: ANN201 - (httpx.AsyncClient, headers)
    """A running service on a fresh database taking history (no `max_age_s`) over HTTP, with an ingest
    key: (client, headers). `request.param` (indirect parametrisation) adds `validation` settings."""
    import httpx

    from urbanpulse.api.app import create_app
    from urbanpulse.auth.keys import KeyStore
    from urbanpulse.auth.roles import Role
    from urbanpulse.config import load_settings
    from urbanpulse.service import IngestService

    validation = {"max_age_s": None, **getattr(request, "param", {})}
    s = load_settings(None, database={"dsn": fresh_db}, api={"enabled": False}, detection={"enabled": False},
                      validation=validation, http_ingest={"ack_timeout_s": 120})
    service = IngestService(s)
    await service.start()
    try:
        key = (await KeyStore(service.pool).create("import", Role.ingest)).secret
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)),
                                     base_url="http://test", timeout=180) as client:
            yield client, {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    finally:
        await service.stop()
