"""What a started `urbanpulse run` has imported by the time it stores its first readings, and the
start's shared reads (benchmarks/README.md ``spawn20``).

A backlog's drain is CPU-bound from the first moment, so every module imported before the first
batch is time a from-spawn figure pays. The full API (FastAPI, its routes and their pydantic
models) is built once the catch-up is over (``spawn16``), and the registry's pydantic models only
when the API or the ``registry`` command needs them (``spawn20``): checked here in a real
`urbanpulse run` against PostgreSQL and a Kafka-protocol broker, whose ``sys.modules`` is written
out on SIGUSR1 once its first readings are in the database.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import services
from urbanpulse.quality.catalogue import MetricCatalogue, MetricSpec

REPO = Path(__file__).resolve().parent.parent

#: `urbanpulse run`, and on SIGUSR1 (a plain handler: it runs on the main thread between two
#: bytecodes, so it takes no lock an import could hold) its sys.modules into the file MODULES_OUT
RUN_WITH_MODULE_DUMP = """
import json, os, signal, sys
def dump(signum, frame):
    out = os.environ["MODULES_OUT"]
    with open(out + ".tmp", "w") as f:
        json.dump(sorted(sys.modules), f)
    os.replace(out + ".tmp", out)
signal.signal(signal.SIGUSR1, dump)
from urbanpulse.cli import main
sys.exit(main(sys.argv[1:]))
"""

#: imported only by the full API (built after the catch-up) or the registry's own commands
NOT_BEFORE_THE_FIRST_BATCH = ("fastapi", "starlette", "urbanpulse.api.app", "urbanpulse.api.routes",
                              "urbanpulse.api.docs", "urbanpulse.registry.model", "urbanpulse.registry.store",
                              "urbanpulse.query.run")
#: what the service runs on: present, or the snapshot was taken before the service started
NEEDED = ("urbanpulse.service", "urbanpulse.pipeline", "urbanpulse.analytics", "urbanpulse.connectors.kafka",
          "urbanpulse.registry.membership", "urbanpulse.registry.current", "uvicorn", "urbanpulse.api.interim")


async def _stored(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT to_regclass('readings')") is None:
            return 0
        return int(await conn.fetchval("SELECT count(*) FROM readings"))
    finally:
        await conn.close()


def _until(check, what: str, timeout_s: float = 120.0, proc: subprocess.Popen | None = None) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s  # a bound for a loaded machine, not a speed check
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"urbanpulse run exited ({proc.returncode}) before {what}")
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout_s} s")


@pytest.mark.slow
def test_a_service_storing_its_first_readings_has_not_imported_the_api_or_the_registry_models(
        kafka_bootstrap: str, fresh_db: str, tmp_path: Path) -> None:
    topic = f"imports-{uuid.uuid4().hex[:8]}"
    services.create_topic(kafka_bootstrap, topic, partitions=2)
    now_ms = int(time.time() * 1000)
    sent = [json.dumps({"sensor_id": f"imp-{i % 7}", "metric": "temperature", "ts": now_ms - 60_000 + i * 100,
                        "value": 20.0 + i % 5}) for i in range(200)]
    services.produce_kafka(kafka_bootstrap, topic, sent)
    port = services.free_port()
    config = {"database": {"dsn": fresh_db}, "log_level": "INFO",
              # the full API waits for a quiet moment that never comes here (below 0 cores), at most
              # two minutes: the snapshot shows what the service itself imported
              "api": {"port": port, "build_below_cores": 0, "build_defer_s": 120},
              "kafka": {"enabled": True, "bootstrap_servers": kafka_bootstrap, "topics": [topic],
                        "group_id": f"imports-{uuid.uuid4().hex[:8]}", "assignment": "manual"}}
    cfg = tmp_path / "urbanpulse.yaml"
    cfg.write_text(yaml.safe_dump(config))
    out = tmp_path / "modules.json"
    log = tmp_path / "run.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-c", RUN_WITH_MODULE_DUMP, "run", "--config", str(cfg)],
                                cwd=tmp_path, stdout=fh, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONPATH=str(REPO / "src"), MODULES_OUT=str(out)))
    try:
        _until(lambda: asyncio.run(_stored(fresh_db)) >= len(sent), "readings stored", proc=proc)
        proc.send_signal(signal.SIGUSR1)
        _until(out.exists, "module list written", timeout_s=30, proc=proc)
        modules = set(json.loads(out.read_text()))
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text()
    missing = [m for m in NEEDED if m not in modules]
    assert not missing, missing
    early = sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in NOT_BEFORE_THE_FIRST_BATCH))
    assert not early, f"imported before the first batch, though only the API or a command needs them: {early}"


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)
_bounds = st.floats(allow_nan=False, allow_infinity=False, width=64, min_value=-1e12, max_value=1e12)


@st.composite
def _catalogue_docs(draw: st.DrawFn) -> dict:
    metrics = {}
    for name in draw(st.lists(_names, min_size=1, max_size=8, unique=True)):
        low, high = sorted((draw(_bounds), draw(_bounds)))
        entry = {"unit": draw(st.sampled_from(["°C", "µg/m³", "%", "hPa", "dB(A)", "1", "m/s", "ppm"])),
                 "min": low, "max": high}
        aliases = draw(st.lists(st.sampled_from(["C", "degC", "ug/m3", "percent", "Pa", "dB"]), max_size=3))
        if aliases:
            entry["aliases"] = aliases
        metrics[name] = entry
    return {"metrics": metrics}


@settings(max_examples=60, deadline=None)
@given(doc=_catalogue_docs(), flow=st.booleans())
def test_a_catalogue_reads_the_same_as_with_the_pure_python_safe_loader(doc: dict, flow: bool, tmp_path_factory) -> None:  # noqa: ANN001
    """The catalogue is parsed with libyaml's C loader where PyYAML has it (a start reads it in
    ~1 ms instead of ~5): any catalogue document, block or flow style, gives the specs the pure
    Python ``yaml.safe_load`` gives."""
    path = tmp_path_factory.mktemp("catalogue") / "metrics.yaml"
    path.write_text(yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=True))
    raw = yaml.safe_load(path.read_text())["metrics"]
    expected = [MetricSpec(name=n, unit=str(e["unit"]), min=float(e["min"]), max=float(e["max"]),
                           aliases=tuple(map(str, e.get("aliases", ())))) for n, e in raw.items()]
    assert MetricCatalogue.load(path).specs == expected
