"""``urbanpulse demo --serve``'s other modes, each a real process: the original clock (incidents at
their exact replayed hours), looping, a replay that ends while the service stays up, a
configured database, and the command line (help, options that do not fit, a busy port,
README's first command). The default run is in test_demo_serve.py."""

from __future__ import annotations

import re
import signal
import socket
from pathlib import Path

import httpx
import pytest

from demo_process import DemoProcess, at, demo_cli, parse, sensor
from services import free_port
from service_process import wait_until
from urbanpulse.demo_incidents import Silent, Spike, Stuck, default_schedule
from urbanpulse.demo_stations import load_sites


def _configured(tmp_path: Path, dsn: str) -> str:
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(f"database:\n  dsn: {dsn}\n")
    return str(cfg)


def test_original_clock_raises_each_alert_at_the_replayed_hour_of_its_incident(tmp_path: Path,
                                                                                fresh_db: str) -> None:
    backlog = 24
    d = DemoProcess(tmp_path, "--config", _configured(tmp_path, fresh_db), "--clock", "original", "--hours", "200",
                    "--backlog", str(backlog), "--speed", "36000")
    try:
        d.wait_ready()
        rnd = default_schedule(sorted(load_sites()), backlog, 200)[:3]
        silent = next(i for i in rnd if isinstance(i, Silent))
        spike = next(i for i in rnd if isinstance(i, Spike))
        stuck = next(i for i in rnd if isinstance(i, Stuck))

        def found(detector: str, inc, metric: str = "pm2_5") -> list[dict]:
            return d.alerts(sensor=sensor(inc.station), metric=metric, detector=detector)

        wait_until(lambda: found("spike", spike) and found("flatline", stuck) and found("silence", silent), 120,
                   interval=1.0, what="the first round's three alerts")
        registered = httpx.get(f"{d.url}/sensors/{sensor(spike.station)}", timeout=10).json()
        assert registered["metrics"]["pm2_5"]["interval_s"] == 3600.0  # the dataset's hourly readings
        # the spike's alert is opened by the spiked reading itself
        assert at(spike.hour) in [parse(a["opened_at"]) for a in found("spike", spike)]
        # a stuck sensor is flagged after a dozen equal readings, before it moves again
        assert any(at(stuck.start + 11) <= parse(a["opened_at"]) < at(stuck.start + stuck.length)
                   for a in found("flatline", stuck))
        # silence: at the last reading before the gap when found during it, or at the first after it when
        # the gap was shorter than the periodic check (1.2 s of wall time at this speed)
        for metric in ("pm2_5", "temperature"):
            assert any(at(silent.start - 1) <= parse(a["opened_at"]) <= at(silent.start + silent.length)
                       for a in found("silence", silent, metric)), (metric, at(silent.start),
                                                                    found("silence", silent, metric))
        d.stop(signal.SIGTERM)
    finally:
        d.stop_quietly()


def test_loop_keeps_going_and_stores_every_reading_once(tmp_path: Path, fresh_db: str) -> None:
    d = DemoProcess(tmp_path, "--config", _configured(tmp_path, fresh_db), "--stations", "3", "--hours", "30",
                    "--backlog", "10", "--speed", "360000", "--loop")
    try:
        d.wait_ready()
        assert "looping" in d.output()
        wait_until(lambda: d.newest("beijing-aotizhongxin") is not None, 60, what="a first stored reading")
        first = d.newest("beijing-aotizhongxin")
        wait_until(lambda: d.newest("beijing-aotizhongxin") > first, 60, what="newer readings")
        out = d.stop(signal.SIGINT)  # Ctrl-C
    finally:
        d.stop_quietly()
    received = int(re.search(r"readings received\s+([\d,]+)", out).group(1).replace(",", ""))
    assert received > 3 * 30 * 11, out[-2000:]  # more than one pass over the 30 hours
    assert re.search(r"already stored\s+0\s", out), out[-2000:]  # a loop never repeats a timestamp
    assert "received = stored + already stored + quarantined: yes" in out


def test_without_loop_the_replay_ends_and_the_service_stays_up(tmp_path: Path, fresh_db: str) -> None:
    d = DemoProcess(tmp_path, "--config", _configured(tmp_path, fresh_db), "--stations", "3", "--hours", "20",
                    "--backlog", "5", "--speed", "36000", "--clock", "original")
    try:
        d.wait_ready()
        wait_until(lambda: "replay finished" in d.output(), 60, what="the end of the replay")
        assert httpx.get(d.url + "/health", timeout=5).status_code == 200
        assert d.newest("beijing-aotizhongxin") == at(19)  # the last replayed hour, and no further
        out = d.stop(signal.SIGTERM)
    finally:
        d.stop_quietly()
    # 3 stations x 20 h x 11 metrics, less the 12 hours the first round's silent station sends nothing
    silent = next(i for i in default_schedule(sorted(load_sites())[:3], 5, 20) if isinstance(i, Silent))
    assert silent.start + silent.length <= 20
    assert re.search(rf"readings received\s+{3 * 20 * 11 - silent.length * 11}\s", out), out[-2000:]


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


def _main(capsys, *args: str) -> tuple[int, str, str]:
    """``urbanpulse demo ARGS`` in this process (the command line's checks, without a subprocess)."""
    from urbanpulse.cli import main

    try:
        code = main(["demo", *args])
    except SystemExit as exc:  # argparse: --help, or an option it rejects
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_explains_every_option(capsys) -> None:
    code, out, _ = _main(capsys, "--help")
    assert code == 0
    blocks = re.split(r"\n(?=  -)", out.split("options:", 1)[1])  # one block per option with its help text
    documented = {b.split()[0].rstrip(","): len(b.split()) for b in blocks if b.strip()}
    for option in ("--serve", "--speed", "--clock", "--backlog", "--loop", "--no-incidents", "--host", "--port",
                   "--stations", "--hours", "--datasets", "--config"):
        assert documented.get(option, 0) >= 8, (option, out)  # a sentence, not just the name
    assert "open data" in out and "operator key" in out and "SIGTERM" in out


def test_options_that_do_not_fit_together_exit_2_saying_what_to_change(capsys) -> None:
    code, _, err = _main(capsys, "--speed", "60")
    assert code == 2 and "--speed: only meaningful with --serve" in err
    code, _, err = _main(capsys, "--serve", "--stations", "2", "--port", str(free_port()))
    assert code == 2 and "--stations 3 or more" in err
    code, _, err = _main(capsys, "--serve", "--speed", "0")
    assert code == 2 and "positive" in err
    code, _, err = _main(capsys, "--serve", "--speed", "4000000")
    assert code == 2 and "--clock original" in err


def test_a_port_in_use_is_refused_before_anything_starts() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = demo_cli("--serve", "--port", str(busy.getsockname()[1]))
    assert r.returncode == 2 and "cannot serve on 127.0.0.1" in r.stderr and "--port" in r.stderr


def test_the_readme_first_command_is_one_line_that_serves_where_it_says() -> None:
    from urbanpulse.config import ApiSettings

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    first = readme.split("```sh\n", 1)[1].split("```", 1)[0].strip()
    assert "\n" not in first and first.endswith("urbanpulse demo --serve"), first
    api = ApiSettings()
    assert f"open http://{api.host}:{api.port}/" in readme.split("```sh", 1)[0]  # the address, above the command
