"""``urbanpulse demo --serve`` as a person runs it: a real process on the embedded PostgreSQL, at
its default speed, checked only through its HTTP API and its output, then stopped with SIGTERM.

The three injected incidents of the first round must each raise its alert at the replayed time
the schedule puts it (event time, so no wall-clock assertion); the printed operator key must
acknowledge one, a request without a key must not. The configured-database path (the demo's
refusal to replay into a database that already holds its readings) runs on the local server.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from services import free_port
from service_process import wait_until
from urbanpulse.demo_incidents import Silent, Spike, Stuck, default_schedule
from urbanpulse.demo_stations import load_sites

BACKLOG = 48  # the default, so the schedule below is the one a visitor gets
#: the dataset's first hour: 2013-03-01 00:00 Beijing time
FIRST_HOUR = datetime(2013, 2, 28, 16, tzinfo=timezone.utc)


def at(hour: int) -> datetime:
    return FIRST_HOUR + timedelta(hours=hour)


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


class DemoProcess:
    """One ``urbanpulse demo --serve`` process, its output in a file."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "demo.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "urbanpulse.cli", "demo", "--serve",
                                          "--port", str(self.port), *args],
                                         cwd=workdir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Until the demo prints how to stop it (after the URL and the key); the first start in a
        fresh checkout compiles the detectors' kernels, on a loaded machine that took ~100 s."""
        deadline = time.monotonic() + timeout
        while "stop with Ctrl-C" not in self.output():
            if self.proc.poll() is not None:
                raise AssertionError(f"demo exited with {self.proc.returncode}:\n{self.output()[-5000:]}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"demo not serving after {timeout}s:\n{self.output()[-5000:]}")
            time.sleep(0.2)

    def key(self) -> str:
        m = re.search(r"^\s+(upk_[0-9a-f]{10}_[A-Za-z0-9_-]{43})$", self.output(), re.MULTILINE)
        assert m, self.output()
        return m.group(1)

    def stop_quietly(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoProcess:
    workdir = tmp_path_factory.mktemp("demo-serve")
    d = DemoProcess(workdir)
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop_quietly()


def test_it_prints_where_to_point_the_browser_and_an_operator_key(demo: DemoProcess) -> None:
    out = demo.output()
    page = httpx.get(demo.url + "/", timeout=10)  # no key: what a visitor gets
    if page.status_code == 200 and page.headers["content-type"].startswith("text/html"):
        assert f"open {demo.url}/ in a browser" in out
    else:  # a build without the page points to the API documentation, which is there
        assert f"open {demo.url}/docs in a browser" in out
        assert httpx.get(demo.url + "/docs", timeout=10).status_code == 200
    assert demo.key().startswith("upk_")
    assert "injected incidents" in out


def test_the_registry_has_the_stations_at_their_real_coordinates_open_to_visitors(demo: DemoProcess) -> None:
    r = httpx.get(demo.url + "/sensors", params={"limit": 100}, timeout=10)  # no key: the open-data scope
    assert r.status_code == 200, r.text
    sensors = {s["id"]: s for s in r.json()["items"]}
    sites = load_sites()
    assert sorted(sensors) == sorted(f"beijing-{name.lower()}" for name in sites)
    for name, site in sites.items():
        s = sensors[f"beijing-{name.lower()}"]
        assert (s["lat"], s["lon"], s["area"]) == (site.lat, site.lon, site.district)
        assert s["metrics"]["pm2_5"] == {"unit": "ug/m3", "interval_s": 3600.0}
        assert s["data_class"] == "open"


def _latest_pm25(demo: DemoProcess, sensor: str) -> datetime | None:
    r = httpx.get(f"{demo.url}/sensors/{sensor}/latest", timeout=10)
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    return max(parse(x["ts"]) for x in r.json()["readings"])


def test_readings_flow_in_replayed_time(demo: DemoProcess) -> None:
    wait_until(lambda: _latest_pm25(demo, "beijing-dongsi") is not None, 60, what="a first stored reading")
    first = _latest_pm25(demo, "beijing-dongsi")
    wait_until(lambda: _latest_pm25(demo, "beijing-dongsi") > first, 60, what="newer readings")
    assert _latest_pm25(demo, "beijing-dongsi") >= at(BACKLOG - 1)  # the backlog is in


def _alerts(demo: DemoProcess, **filters: str) -> list[dict]:
    r = httpx.get(demo.url + "/alerts", params={"limit": 500, **filters},
                  headers={"Authorization": f"Bearer {demo.key()}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_each_injected_incident_raises_its_alert_at_the_replayed_time(demo: DemoProcess) -> None:
    stations = sorted(load_sites())
    rnd = default_schedule(stations, BACKLOG, 35064)[:3]
    silent = next(i for i in rnd if isinstance(i, Silent))
    spike = next(i for i in rnd if isinstance(i, Spike))
    stuck = next(i for i in rnd if isinstance(i, Stuck))

    def sensor(name: str) -> str:
        return f"beijing-{name.lower()}"

    def found(detector: str, inc, metric: str = "pm2_5") -> list[dict]:
        return _alerts(demo, sensor=sensor(inc.station), metric=metric, detector=detector)

    wait_until(lambda: found("spike", spike) and found("flatline", stuck) and found("silence", silent), 120,
               interval=1.0, what="the first round's three alerts")
    # the spike's alert is opened by the spiked reading itself
    assert at(spike.hour) in [parse(a["opened_at"]) for a in found("spike", spike)]
    # a stuck sensor is flagged after a dozen equal readings, before it moves again
    assert any(at(stuck.start + 11) <= parse(a["opened_at"]) < at(stuck.start + stuck.length)
               for a in found("flatline", stuck))
    # silence: from the last reading before the gap, while the station is quiet, on each of its series
    # (those the data had already left without readings just before have theirs from earlier)
    for metric in ("pm2_5", "temperature"):
        assert any(at(silent.start - 1) <= parse(a["opened_at"]) < at(silent.start + silent.length)
                   for a in found("silence", silent, metric)), metric


def test_the_printed_operator_key_acknowledges_an_alert_and_no_key_cannot(demo: DemoProcess) -> None:
    wait_until(lambda: _alerts(demo, state="open"), 60, what="an open alert")
    alert = _alerts(demo, state="open")[0]
    anonymous = httpx.post(f"{demo.url}/alerts/{alert['id']}/ack", json={"note": "seen"}, timeout=10)
    assert anonymous.status_code == 401, anonymous.text
    assert httpx.get(demo.url + "/alerts", timeout=10).status_code == 401  # alerts are not open data
    r = httpx.post(f"{demo.url}/alerts/{alert['id']}/ack", json={"note": "on it"},
                   headers={"Authorization": f"Bearer {demo.key()}"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "acknowledged" and r.json()["acknowledged_by"] == "demo operator"


def test_sigterm_stops_it_cleanly_with_the_summary(demo: DemoProcess) -> None:
    demo.proc.send_signal(signal.SIGTERM)
    assert demo.proc.wait(60) == 0, demo.output()[-3000:]
    out = demo.output()
    assert "received = stored + already stored + quarantined: yes" in out
    assert re.search(r"alerts\s+[1-9][\d,]*\s+\(.*spike.*\)", out), out[-2000:]
    assert "Traceback" not in out
    pgdata = next(demo.log.parent.glob(".urbanpulse/pgdata"))
    assert not (pgdata / "postmaster.pid").exists()  # the embedded server stopped with it
    with pytest.raises(httpx.ConnectError):
        httpx.get(demo.url + "/health", timeout=2)


async def test_a_configured_database_gets_the_stations_and_a_key_but_not_a_second_replay(fresh_db: str) -> None:
    import asyncpg

    from urbanpulse.auth.keys import KeyStore
    from urbanpulse.auth.roles import Role
    from urbanpulse.config import Settings
    from urbanpulse.datasets.beijing import read_station, station_files
    from urbanpulse.demo import run_demo
    from urbanpulse.demo_serve import BUNDLED_CITY, DemoError, prepare_database

    settings = Settings(database={"dsn": fresh_db})
    stations = [read_station(f) for f in station_files(BUNDLED_CITY)][:3]
    key = await prepare_database(fresh_db, settings, stations, fresh=False)
    conn = await asyncpg.connect(fresh_db)
    try:
        assert (await KeyStore(conn).verify(key)).role is Role("operator")
        rows = await conn.fetch("SELECT sensor_id, lat, lon FROM sensors ORDER BY 1")
        sites = load_sites()
        assert [(r["sensor_id"], r["lat"], r["lon"]) for r in rows] == [
            (d.sensor_id, sites[d.station].lat, sites[d.station].lon) for d in stations]
    finally:
        await conn.close()
    # once the database holds the stations' readings, a serve demo there would add nothing: refused
    assert await run_demo(settings, stations=3, hours=5) == 0
    with pytest.raises(DemoError, match="already holds readings"):
        await prepare_database(fresh_db, settings, stations, fresh=False)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "urbanpulse.cli", "demo", *args], capture_output=True, text=True,
                          timeout=120)


def test_help_explains_every_option() -> None:
    out = _cli("--help").stdout
    blocks = re.split(r"\n(?=  -)", out.split("options:", 1)[1])  # one block per option with its help text
    documented = {b.split()[0].rstrip(","): len(b.split()) for b in blocks if b.strip()}
    for option in ("--serve", "--speed", "--backlog", "--loop", "--no-incidents", "--host", "--port", "--stations",
                   "--hours", "--datasets", "--config"):
        assert documented.get(option, 0) >= 8, (option, out)  # a sentence, not just the name
    assert "open data" in out and "operator key" in out and "SIGTERM" in out


def test_options_that_do_not_fit_together_exit_2_saying_what_to_change() -> None:
    r = _cli("--speed", "60")
    assert r.returncode == 2 and "--speed: only meaningful with --serve" in r.stderr
    r = _cli("--serve", "--stations", "2")
    assert r.returncode == 2 and "--stations 3 or more" in r.stderr
    r = _cli("--serve", "--speed", "0")
    assert r.returncode == 2 and "positive" in r.stderr


def test_the_readme_first_command_is_one_line_that_serves_where_it_says() -> None:
    from urbanpulse.config import ApiSettings

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    first = readme.split("```sh\n", 1)[1].split("```", 1)[0].strip()
    assert "\n" not in first and first.endswith("urbanpulse demo --serve"), first
    api = ApiSettings()
    url = f"http://{api.host}:{api.port}/"
    assert f"open {url}" in readme.split("```sh", 1)[0]  # the browser address, above the command


def _configured(tmp_path: Path, dsn: str) -> str:
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(f"database:\n  dsn: {dsn}\n")
    return str(cfg)


def _stop(d: DemoProcess, sig: int) -> str:
    d.proc.send_signal(sig)
    assert d.proc.wait(60) == 0, d.output()[-3000:]
    return d.output()


def test_loop_goes_on_past_the_replayed_span_in_time_and_stores_every_reading_once(tmp_path: Path,
                                                                                    fresh_db: str) -> None:
    d = DemoProcess(tmp_path, "--config", _configured(tmp_path, fresh_db), "--stations", "3", "--hours", "30",
                    "--backlog", "10", "--speed", "360000", "--loop")
    try:
        d.wait_ready()
        assert "looping" in d.output()
        # three loops of 30 hours: the newest reading is past the span twice over
        wait_until(lambda: (_latest_pm25(d, "beijing-aotizhongxin") or at(0)) >= at(90), 120,
                   what="the replay to loop twice")
        out = _stop(d, signal.SIGINT)  # Ctrl-C
    finally:
        d.stop_quietly()
    assert re.search(r"already stored\s+0\s", out), out[-2000:]  # a loop never repeats a timestamp
    assert "received = stored + already stored + quarantined: yes" in out


def test_without_loop_the_replay_ends_and_the_service_stays_up(tmp_path: Path, fresh_db: str) -> None:
    d = DemoProcess(tmp_path, "--config", _configured(tmp_path, fresh_db), "--stations", "3", "--hours", "20",
                    "--backlog", "5", "--speed", "36000")
    try:
        d.wait_ready()
        wait_until(lambda: "replay finished at" in d.output(), 60, what="the end of the replay")
        assert httpx.get(d.url + "/health", timeout=5).status_code == 200
        assert _latest_pm25(d, "beijing-aotizhongxin") == at(19)  # the last replayed hour, and no further
        out = _stop(d, signal.SIGTERM)
    finally:
        d.stop_quietly()
    # 3 stations x 20 h x 11 metrics, less the 12 hours the first round's silent station sends nothing
    silent = next(i for i in default_schedule(sorted(load_sites())[:3], 5, 20) if isinstance(i, Silent))
    assert silent.start + silent.length <= 20
    assert re.search(rf"readings received\s+{3 * 20 * 11 - silent.length * 11}\s", out), out[-2000:]


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = _cli("--serve", "--port", str(busy.getsockname()[1]))
    assert r.returncode == 2 and "cannot serve on 127.0.0.1" in r.stderr and "--port" in r.stderr
