"""Sources by entry-point name: a plugin source from another package runs in the service with a
typed config, its readings carry its own source id (registered at start-up, no core edit), and
a misconfigured or broken plugin stops start-up with a message naming the field or package."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time

import asyncpg
import pytest

from urbanpulse.config import load_settings
from urbanpulse.errors import ConfigError, PluginError
from urbanpulse.plugins import SOURCE_GROUP, installed
from urbanpulse.service import IngestService
from urbanpulse.source_plugins import build_sources
from urbanpulse.metrics import IngestMetrics

PLUGIN = '''
import asyncio, json, time
from pydantic import BaseModel, ConfigDict, Field
from urbanpulse.formats.base import MessageBatch


class TickConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sensors: int = Field(3, ge=1)
    metric: str = "temperature"


class TickSource:
    """Emits one canonical reading per configured sensor, then idles; acks via the sink."""

    Config = TickConfig
    name = "acme_tick"

    def __init__(self, config, metrics):
        self.config = config
        self.acked = 0

    def health(self):
        return {"connected": True, "acked": self.acked}

    async def run(self, sink, stopping):
        now = int(time.time() * 1000)
        payloads = [json.dumps({"sensor_id": f"tick-{k}", "metric": self.config.metric, "ts": now - k,
                                "value": 20.0 + k}).encode() for k in range(self.config.sensors)]

        def ack():
            self.acked += len(payloads)

        await sink.submit(MessageBatch(source=self.name, payloads=payloads), ack=ack)
        await stopping.wait()
        await sink.drain()
'''


@pytest.fixture
def acme(tmp_path, monkeypatch):
    dist = tmp_path / "acme_urbanpulse-0.3.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-urbanpulse\nVersion: 0.3.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [urbanpulse.connectors]
        acme_tick = acme_urbanpulse:TickSource
        acme_broken = acme_urbanpulse_missing:Nothing
        """))
    (tmp_path / "acme_urbanpulse.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("acme_urbanpulse", None)


def test_plugin_source_is_listed_with_its_package(acme):
    info = installed(SOURCE_GROUP)["acme_tick"]
    assert (info.package, info.version) == ("acme-urbanpulse", "0.3.0")
    assert {"mqtt", "kafka", "replay"} <= set(installed(SOURCE_GROUP))


def test_misconfigured_or_broken_source_plugin_stops_start_up(acme):
    bad = load_settings(None, sources=[{"plugin": "acme_tick", "options": {"sensors": 0}}])
    with pytest.raises(ConfigError, match=r"sources\[0\]\.options\.sensors"):
        build_sources(bad, IngestMetrics())
    broken = load_settings(None, sources=[{"plugin": "acme_broken"}])
    with pytest.raises(PluginError, match="acme-urbanpulse"):
        build_sources(broken, IngestMetrics())
    twice = load_settings(None, sources=[{"plugin": "acme_tick"}, {"plugin": "acme_tick"}])
    with pytest.raises(ConfigError, match="used twice"):
        build_sources(twice, IngestMetrics())


@pytest.mark.integration
async def test_plugin_source_runs_in_the_service_with_its_own_registered_source_id(acme, fresh_db):
    settings = load_settings(None, database={"dsn": fresh_db}, api={"enabled": False}, detection={"enabled": False},
                             sources=[{"plugin": "acme_tick", "name": "acme-north", "options": {"sensors": 4}}])
    service = IngestService(settings)
    await service.start()
    try:
        src = service.sources[0]
        assert src.name == "acme-north"
        deadline = time.monotonic() + 30
        while src.health()["acked"] < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert src.health()["acked"] == 4  # acknowledged once the sink (pipeline) had it durable
    finally:
        await service.stop()
    conn = await asyncpg.connect(fresh_db)
    try:
        sid = await conn.fetchval("SELECT id FROM sources WHERE name = 'acme-north'")
        assert sid is not None and sid >= 100
        rows = await conn.fetch("SELECT source, count(*) AS n FROM readings GROUP BY 1")
        assert [(r["source"], r["n"]) for r in rows] == [(sid, 4)]
        assert await conn.fetchval("SELECT id FROM sources WHERE name = 'mqtt'") == 1  # built-ins keep their ids
    finally:
        await conn.close()
