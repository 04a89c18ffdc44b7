"""The live operations page under a city's load: 1,000 sensors each reporting every 10 s over MQTT
(100 readings/s, spread evenly) into a real `urbanpulse run` on real PostgreSQL, with Debian's
chromium (headless, through chromium-driver and Selenium) as the operator's browser.

Measured in one run:

- **page load**: navigation start -> the map shows all 1,000 sensors with their latest values
  (the page's ``urbanpulseLive.readyAt``, ``performance.now()`` when the first snapshot is drawn),
  over ``--loads`` reloads of one tab (the first one cold, the rest with the browser's cache);
- **publish -> value on the page**: for every reading, the publisher stamps ``ts`` with its wall
  clock just before publishing; the page records ``Date.now()`` after it has drawn the value
  (``urbanpulseLive.arrivals``); latency = arrival - ts, same machine, same clock. The peer,
  measured over the same seconds: a plain Python client reading ``/live/stream`` (the transport
  without the browser), so the ratio page/peer is what the browser adds;
- **CPU cost of open pages**: CPU seconds (utime + stime from /proc) of the service process over
  ``--window`` seconds with no page open, with ``--pages`` pages open (windows of several
  chromium instances, 4 per instance: a browser has 6 HTTP/1.1 connections per host and each page
  holds one stream; steady state, after each has drawn its snapshot), and with none again
  (bracketing drift). PostgreSQL's own CPU (the snapshot query when a page opens) is not in it.

    python benchmarks/live_page.py [--sensors 1000] [--period 10] [--pages 20] [--window 60] [--json out.json]

Reports numbers; does not pass or fail. Needs PostgreSQL on 127.0.0.1:5432, mosquitto, chromium
and chromedriver (as the browser tests do).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

import browser  # noqa: E402
import services  # noqa: E402
from service_process import ServiceProcess  # noqa: E402

TOPIC = "city/bench"

#: publishes ``sensors`` sensors every ``period`` s, evenly spread, ts = wall clock at publish
_PUBLISHER = r"""
import json, math, random, sys, time
import paho.mqtt.client as mqtt
spec = json.loads(sys.argv[1])
c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id="up-bench-live",
                protocol=mqtt.MQTTv311, clean_session=True)
c.max_inflight_messages_set(1000)
c.max_queued_messages_set(0)
c.connect(spec["host"], spec["port"], keepalive=30)
c.loop_start()
n, period = spec["sensors"], spec["period"]
step = period / n
t0 = time.monotonic()
i = 0
while True:
    due = t0 + i * step
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    k = i % n
    # a smooth daily-like wave per sensor with small noise: normal operations, not an alert storm
    value = round(30 + (k % 40) + 8 * math.sin(time.time() / 900 + k) + random.gauss(0, 0.5), 2)
    msg = {"sensor_id": f"bench-{k:04d}", "metric": "pm2_5", "ts": time.time_ns() // 1_000_000, "value": value}
    c.publish(spec["topic"], json.dumps(msg), qos=1)
    i += 1
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))]


async def register(dsn: str, n: int) -> None:
    """``n`` sensors on a grid over Beijing, each with pm2_5 every 10 s (registry store, one transaction)."""
    from urbanpulse.registry.model import SensorIn
    from urbanpulse.registry.store import save_sensor

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            for k in range(n):
                await save_sensor(conn, SensorIn(id=f"bench-{k:04d}", name=f"Bench {k}", lat=39.75 + (k // 40) * 0.012,
                                                 lon=116.15 + (k % 40) * 0.012, area=f"district-{k % 8}",
                                                 metrics={"pm2_5": {"unit": "ug/m3", "interval_s": 10}}))
    finally:
        await conn.close()


class PeerClient(threading.Thread):
    """A plain client of /live/stream: arrival - ts for each reading, as the browser measures it."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.url, self.key = url, key
        self.latencies: list[float] = []
        self.recording = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(5, read=None)) as client, \
                client.stream("GET", self.url + "/live/stream", headers={"Authorization": f"Bearer {self.key}"}) as r:
            event = None
            for line in r.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "readings" and self.recording.is_set():
                    now = time.time_ns() / 1e6
                    self.latencies += [now - row[2] for row in json.loads(line[6:])["readings"]]


def open_page(driver: Any, url: str, key: str) -> list[float]:
    """Load the page in the current tab with ``key`` in its sessionStorage; returns [readyAt,
    sensorsAt] (ms since navigation start: values drawn; the registry's markers placed)."""
    if not driver.current_url.startswith(url):
        driver.get(url + "/")
        driver.execute_script("sessionStorage.setItem('urbanpulse.key', arguments[0])", key)
    driver.get(url + "/")
    return browser.wait_for(lambda: driver.execute_script(
        "const h = window.urbanpulseLive; return h && h.ready && h.markers > 0 ? [h.readyAt, h.sensorsAt] : null"), 600,
        "the page's snapshot")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sensors", type=int, default=1000)
    ap.add_argument("--period", type=float, default=10.0, help="seconds between two readings of a sensor")
    ap.add_argument("--pages", type=int, default=20, help="pages open in the CPU phase")
    ap.add_argument("--window", type=float, default=60.0, help="seconds of each CPU and latency window")
    ap.add_argument("--loads", type=int, default=5, help="page loads timed")
    ap.add_argument("--warmup", type=float, default=25.0)
    ap.add_argument("--pg-dsn", default=services.PG_DSN)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    why = browser.missing()
    if why:
        sys.exit(f"cannot run: {why}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up (browsers, service, database) on kill

    work = Path(tempfile.mkdtemp(prefix="up-bench-live-"))
    name, dsn = services.create_database(args.pg_dsn, prefix="up_bench_livepage")
    broker = services.start_mosquitto(work / "mosquitto")
    svc = ServiceProcess({"database": {"dsn": dsn}, "log_level": "WARNING",
                          "mqtt": {"enabled": True, "host": broker.host, "port": broker.port, "topics": [f"{TOPIC}/#"]}},
                         work)
    publisher = driver = peer = None
    drivers: list[Any] = []
    result: dict[str, Any] = {"sensors": args.sensors, "period_s": args.period, "pages": args.pages,
                              "window_s": args.window, "cpu_count": os.cpu_count()}
    try:
        svc.start()
        asyncio.run(register(dsn, args.sensors))
        key = svc.key("viewer")
        publisher = subprocess.Popen([sys.executable, "-c", _PUBLISHER, json.dumps(
            {"host": broker.host, "port": broker.port, "topic": f"{TOPIC}/pm", "sensors": args.sensors,
             "period": args.period})])
        log(f"publishing {args.sensors} sensors every {args.period:g} s; warming up {args.warmup:g} s")
        time.sleep(args.warmup)

        driver = browser.chrome(work / "profile")
        timed = [open_page(driver, svc.url, key) for _ in range(args.loads)]
        loads = [t[0] for t in timed]
        result["page_load_ms"] = {"first": loads[0], "median_of_rest": statistics.median(loads[1:] or loads),
                                  "all": loads, "markers_placed_at": [t[1] for t in timed]}
        result["markers"] = driver.execute_script("return window.urbanpulseLive.markers")
        log(f"page load: first {loads[0]:.0f} ms, then median {result['page_load_ms']['median_of_rest']:.0f} ms "
            f"({result['markers']} markers)")

        # latency: one page and the plain peer client over the same window
        peer = PeerClient(svc.url, key)
        peer.start()
        time.sleep(2)
        driver.execute_script("window.urbanpulseLive.drain()")
        peer.recording.set()
        time.sleep(args.window)
        arrivals = driver.execute_script("return window.urbanpulseLive.drain()")
        peer.recording.clear()
        page_lat = [a[3] - a[2] for a in arrivals]
        result["latency_ms"] = {
            "page": {"n": len(page_lat), "p50": pct(page_lat, 50), "p99": pct(page_lat, 99)},
            "peer_sse_client": {"n": len(peer.latencies), "p50": pct(peer.latencies, 50),
                                "p99": pct(peer.latencies, 99)}}
        lat = result["latency_ms"]
        lat["page_over_peer_p50"] = lat["page"]["p50"] / lat["peer_sse_client"]["p50"]
        log(f"publish -> page: p50 {lat['page']['p50']:.0f} ms, p99 {lat['page']['p99']:.0f} ms "
            f"({len(page_lat)} readings); peer client p50 {lat['peer_sse_client']['p50']:.0f} ms, "
            f"p99 {lat['peer_sse_client']['p99']:.0f} ms")
        peer.stop.set()
        driver.quit()
        driver = None
        time.sleep(3)

        pid = svc.proc.pid  # type: ignore[union-attr]

        def window(label: str) -> float:
            c0, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(args.window)
            used = cpu_seconds(pid) - c0
            log(f"{label}: {used:.2f} CPU s over {time.monotonic() - t0:.1f} s")
            return used

        none_before = window("no page open")
        per_browser = 4
        drivers = [browser.chrome(work / f"profile-pages-{b}") for b in range(math.ceil(args.pages / per_browser))]
        for k in range(args.pages):
            d = drivers[k // per_browser]
            if k % per_browser:
                d.switch_to.new_window("window")
            open_page(d, svc.url, key)
        log(f"{args.pages} pages open in {len(drivers)} browsers")
        time.sleep(3)

        def page_stats() -> list[tuple[int, bool]]:
            out = []
            for d in drivers:
                for handle in d.window_handles:
                    d.switch_to.window(handle)
                    out.append(tuple(d.execute_script("const h = window.urbanpulseLive; return [h.frames, h.paused]")))
            return out

        before = page_stats()
        with_pages = window(f"{args.pages} pages open")
        after = page_stats()
        frames = [a[0] - b[0] for a, b in zip(after, before)]
        paused = sum(1 for a in after if a[1])
        for d in drivers:
            d.quit()
        drivers = []
        time.sleep(3)
        none_after = window("no page open (again)")
        baseline = (none_before + none_after) / 2
        result["cpu_s"] = {"no_pages_before": none_before, "pages_open": with_pages, "no_pages_after": none_after,
                           "extra_for_pages": with_pages - baseline,
                           "extra_per_page_per_min": (with_pages - baseline) / args.pages * 60 / args.window,
                           "ratio_pages_over_none": with_pages / baseline,
                           "frames_per_page_in_window": frames, "pages_paused": paused}
        log(f"CPU: {with_pages:.2f} s with {args.pages} pages vs {baseline:.2f} s without "
            f"(x{with_pages / baseline:.2f}; {result['cpu_s']['extra_per_page_per_min']:.3f} CPU s per page per minute)")
    finally:
        for d in [driver, *drivers]:
            if d is not None:
                d.quit()
        if peer is not None:
            peer.stop.set()
        if publisher is not None:
            publisher.kill()
            publisher.wait(10)
        svc.stop_quietly()
        broker.stop()
        services.drop_database(name, args.pg_dsn)
    out = json.dumps(result, indent=2)
    print(out)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / f"live_page-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(out)
    if args.json:
        args.json.write_text(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
