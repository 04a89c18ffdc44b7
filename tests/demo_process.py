"""``urbanpulse demo --serve`` as a real subprocess, for the demo's end-to-end tests."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from services import free_port

#: the dataset's first hour: 2013-03-01 00:00 Beijing time
FIRST_HOUR = datetime(2013, 2, 28, 16, tzinfo=timezone.utc)


def at(hour: int) -> datetime:
    """The dataset's time of replayed hour ``hour`` (the original clock's event time)."""
    return FIRST_HOUR + timedelta(hours=hour)


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def sensor(station: str) -> str:
    return f"beijing-{station.lower()}"


class DemoProcess:
    """One ``urbanpulse demo --serve`` process, its output in a file."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "demo.log"
        self.started_at = datetime.now(timezone.utc)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "urbanpulse.cli", "demo", "--serve",
                                          "--port", str(self.port), *args],
                                         cwd=workdir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 300.0) -> DemoProcess:
        """Until the demo prints how to stop it (after the URL and the key); the first start in a
        fresh checkout compiles the detectors' kernels, on a loaded machine that took ~100 s."""
        deadline = time.monotonic() + timeout
        while "stop with Ctrl-C" not in self.output():
            if self.proc.poll() is not None:
                raise AssertionError(f"demo exited with {self.proc.returncode}:\n{self.output()[-5000:]}")
            if time.monotonic() > deadline:
                self.stop_quietly()
                raise AssertionError(f"demo not serving after {timeout}s:\n{self.output()[-5000:]}")
            time.sleep(0.2)
        return self

    def key(self) -> str:
        m = re.search(r"^\s+(upk_[0-9a-f]{10}_[A-Za-z0-9_-]{43})$", self.output(), re.MULTILINE)
        assert m, self.output()
        return m.group(1)

    def alerts(self, **filters: str) -> list[dict]:
        r = httpx.get(self.url + "/alerts", params={"limit": 500, **filters},
                      headers={"Authorization": f"Bearer {self.key()}"}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def newest(self, sensor_id: str) -> datetime | None:
        """Time of the sensor's newest stored reading, read as a visitor (no key), or None."""
        r = httpx.get(f"{self.url}/sensors/{sensor_id}/latest", timeout=10)
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        return max(parse(x["ts"]) for x in r.json()["readings"])

    def readings(self, sensor_id: str, metric: str) -> list[tuple[datetime, float]]:
        """Every stored reading of a series, oldest first, read as a visitor."""
        out: list[tuple[datetime, float]] = []
        params = {"sensor": sensor_id, "metric": metric, "start": "2000-01-01T00:00:00Z", "limit": 10000,
                  "path": "raw"}
        while True:
            r = httpx.get(self.url + "/readings", params=params, timeout=30)
            assert r.status_code == 200, r.text
            page = r.json()
            out += [(parse(i["ts"]), i["value"]) for i in page["items"]]
            if not page["next_cursor"]:
                return out
            params["cursor"] = page["next_cursor"]

    def stop(self, sig: int) -> str:
        self.proc.send_signal(sig)
        assert self.proc.wait(60) == 0, self.output()[-3000:]
        return self.output()

    def stop_quietly(self) -> None:
        """SIGTERM (so the demo stops its embedded PostgreSQL too), SIGKILL if that does not do."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def demo_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "urbanpulse.cli", "demo", *args], capture_output=True, text=True,
                          timeout=120)
