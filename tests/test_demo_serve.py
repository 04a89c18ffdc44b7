"""``urbanpulse demo --serve`` as a person runs it: a real process on the embedded PostgreSQL with
its defaults (3600x, the live clock), checked only through its HTTP API and its output, then
stopped with SIGTERM.

Each injected incident of the first round must raise its alert on the readings the schedule
changed -- found in what was stored, since the live clock stamps readings when they are sent;
the printed operator key must acknowledge an alert, a request without a key must not. The
other modes (original clock, looping, a configured database, options) are in
test_demo_serve_modes.py.
"""

from __future__ import annotations

import re
import signal
from datetime import datetime, timedelta, timezone

import httpx
import numpy as np
import pytest

from demo_process import DemoProcess, parse, sensor
from service_process import wait_until
from urbanpulse.datasets.beijing import read_station, station_files
from urbanpulse.demo_incidents import Silent, Spike, Stuck, default_schedule, inject
from urbanpulse.demo_stations import load_sites

BACKLOG = 48  # the default


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoProcess:
    d = DemoProcess(tmp_path_factory.mktemp("demo-serve"))
    try:
        yield d.wait_ready()
    finally:
        d.stop_quietly()


@pytest.fixture(scope="module")
def first_round() -> tuple[Silent, Spike, Stuck]:
    rnd = default_schedule(sorted(load_sites()), BACKLOG, 35064)[:3]
    return (next(i for i in rnd if isinstance(i, Silent)), next(i for i in rnd if isinstance(i, Spike)),
            next(i for i in rnd if isinstance(i, Stuck)))


def test_it_prints_where_to_point_the_browser_and_an_operator_key(demo: DemoProcess) -> None:
    out = demo.output()
    page = httpx.get(demo.url + "/", timeout=10)  # no key: what a visitor gets
    if page.status_code == 200 and page.headers["content-type"].startswith("text/html"):
        assert f"open {demo.url}/ in a browser" in out
    else:  # a build without the page points to the API documentation, which is there
        assert f"open {demo.url}/docs in a browser" in out
        assert httpx.get(demo.url + "/docs", timeout=10).status_code == 200
    assert demo.key().startswith("upk_")
    assert "injected incidents" in out and "live clock" in out


def test_the_registry_has_the_stations_at_their_real_coordinates_open_to_visitors(demo: DemoProcess) -> None:
    r = httpx.get(demo.url + "/sensors", params={"limit": 100}, timeout=10)  # no key: the open-data scope
    assert r.status_code == 200, r.text
    sensors = {s["id"]: s for s in r.json()["items"]}
    sites = load_sites()
    assert sorted(sensors) == sorted(sensor(name) for name in sites)
    for name, site in sites.items():
        s = sensors[sensor(name)]
        assert (s["lat"], s["lon"], s["area"]) == (site.lat, site.lon, site.district)
        # the live clock at 3600x: a replayed hour a second, so a reading a second is expected
        assert s["metrics"]["pm2_5"] == {"unit": "ug/m3", "interval_s": 1.0}
        assert s["data_class"] == "open"


def test_readings_flow_stamped_by_the_live_clock(demo: DemoProcess) -> None:
    wait_until(lambda: demo.newest("beijing-dongsi") is not None, 60, what="a first stored reading")
    first = demo.newest("beijing-dongsi")
    wait_until(lambda: demo.newest("beijing-dongsi") > first, 60, what="newer readings")
    asked = datetime.now(timezone.utc)
    newest = demo.newest("beijing-dongsi")
    # stamped when sent: never ahead of the clock, and after the process started (less the backlog,
    # stamped one interval apart just before the start)
    assert demo.started_at - timedelta(seconds=BACKLOG + 1) <= newest <= asked + timedelta(seconds=1)


def _injected(station: str, incidents: list) -> dict[str, np.ndarray]:
    """The station's values after injection, computed from the dataset as the demo does."""
    path = next(f for f in station_files() if f"_{station}_" in f.name)
    return inject(read_station(path), incidents).data.values


def test_each_injected_incident_raises_its_alert_on_the_readings_it_changed(demo: DemoProcess, first_round) -> None:
    silent, spike, stuck = first_round

    def found(detector: str, inc, metric: str = "pm2_5") -> list[dict]:
        return demo.alerts(sensor=sensor(inc.station), metric=metric, detector=detector)

    wait_until(lambda: found("spike", spike) and found("flatline", stuck) and found("silence", silent), 120,
               interval=1.0, what="the first round's three alerts")
    # every alert names a station (a silent station is not the whole replay source going quiet)
    assert {a["sensor_id"] for a in demo.alerts()} <= {sensor(name) for name in load_sites()}
    # the spike: its alert is triggered by the spiked reading itself, value as injected
    spiked = float(_injected(spike.station, [spike])["pm2_5"][spike.hour])
    assert any(t["value"] == spiked for a in found("spike", spike) for t in a["triggers"]), found("spike", spike)
    # the stuck sensor: flagged while it repeats its value, after a dozen equal readings
    stuck_value = float(_injected(stuck.station, [stuck])["pm2_5"][stuck.start])
    stored = demo.readings(sensor(stuck.station), "pm2_5")
    opened = [parse(a["opened_at"]) for a in found("flatline", stuck)]
    at_alert = [i for i, (ts, v) in enumerate(stored) if ts in opened and v == stuck_value]
    assert at_alert, (opened, stuck_value)
    i = at_alert[0]
    equal_before = next(k for k in range(i + 1) if k == i or stored[i - k - 1][1] != stuck_value) + 1
    assert equal_before >= 12, (equal_before, stored[max(0, i - 15):i + 1])
    # the silence: opened at the last reading before the gap the incident left (or at the first after it,
    # had the periodic check missed the gap), on each series
    for metric in ("pm2_5", "temperature"):
        stamps = [ts for ts, _ in demo.readings(sensor(silent.station), metric)]
        gaps = [(a, b) for a, b in zip(stamps, stamps[1:]) if b - a >= timedelta(seconds=silent.length)]
        assert gaps, metric
        assert any(a <= parse(al["opened_at"]) <= b for al in found("silence", silent, metric) for a, b in gaps), metric


def test_the_printed_operator_key_acknowledges_an_alert_and_no_key_cannot(demo: DemoProcess) -> None:
    wait_until(lambda: demo.alerts(state="open"), 60, what="an open alert")
    alert = demo.alerts(state="open")[0]
    anonymous = httpx.post(f"{demo.url}/alerts/{alert['id']}/ack", json={"note": "seen"}, timeout=10)
    assert anonymous.status_code == 401, anonymous.text
    assert httpx.get(demo.url + "/alerts", timeout=10).status_code == 401  # alerts are not open data
    r = httpx.post(f"{demo.url}/alerts/{alert['id']}/ack", json={"note": "on it"},
                   headers={"Authorization": f"Bearer {demo.key()}"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "acknowledged" and r.json()["acknowledged_by"] == "demo operator"


def test_sigterm_stops_it_cleanly_with_the_summary(demo: DemoProcess) -> None:
    out = demo.stop(signal.SIGTERM)
    assert "received = stored + already stored + quarantined: yes" in out
    assert re.search(r"alerts\s+[1-9][\d,]*\s+\(.*spike.*\)", out), out[-2000:]
    assert "Traceback" not in out
    pgdata = demo.log.parent / ".urbanpulse" / "pgdata"
    assert pgdata.is_dir() and not (pgdata / "postmaster.pid").exists()  # the embedded server stopped with it
    with pytest.raises(httpx.ConnectError):
        httpx.get(demo.url + "/health", timeout=2)
