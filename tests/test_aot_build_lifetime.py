"""A kernel build lives no longer than the process that started it, and one start waits for another's build.

Session 44 saw three ahead-of-time builds of one tree in one folder at once, 3.3 GB resident each: the build's
file lock was held by the starting process only, so when that process was killed (a test timeout, Ctrl-C) its
`python -m urbanpulse.aot` went on, and the next start found the lock free and built beside it. Now the build
process dies with its parent (and holds the lock too), and a start that finds a build running says whose and waits.

For real: the starting processes are `aot.build` in subprocesses, killed with SIGKILL; the build processes are
found by their command line in /proc. Nothing is built to the end (each build is killed within seconds).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG is Linux's")

START = """
import logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
from urbanpulse import aot
aot.build(Path(sys.argv[1]))
"""


def _builds(directory: Path) -> list[int]:
    """Process ids of the kernel builds (``python -m urbanpulse.aot <directory>/.build-...``) running now."""
    found = []
    prefix = f"{directory}/".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"urbanpulse.aot" in argv and any(a.startswith(prefix) for a in argv):
            found.append(int(proc.name))
    return found


def _start(directory: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen([sys.executable, "-c", START, str(directory)], stdout=subprocess.DEVNULL, stderr=err,
                                env=dict(os.environ, URBANPULSE_KERNELS="aot"))


def _wait_for(what, timeout: float, every: float = 0.1, watch=None):  # noqa: ANN001, ANN202 - a test helper
    """Poll ``what()`` until it is truthy (returned) or ``timeout`` passes (None); ``watch()`` is called on every
    poll (to sample the running builds)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if watch is not None:
            watch()
        got = what()
        if got:
            return got
        time.sleep(every)
    return None


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def kernel_dir(tmp_path: Path):
    """An empty kernel folder; whatever build is still running in it at the end is killed (main's orphans)."""
    d = tmp_path / "kernels"
    d.mkdir()
    yield d
    _kill(_builds(d))


def test_a_build_dies_with_the_process_that_started_it(kernel_dir: Path, tmp_path: Path) -> None:
    start = _start(kernel_dir, tmp_path / "start.log")
    try:
        build = _wait_for(lambda: _builds(kernel_dir), 60)
        assert build, f"no build started: {(tmp_path / 'start.log').read_text()[-2000:]}"
    finally:
        start.kill()
        start.wait()
    left = _wait_for(lambda: not _builds(kernel_dir), 10)
    assert left, f"the build {_builds(kernel_dir)} outlived its killed parent {start.pid} by 10 s"
    (abandoned,) = kernel_dir.glob(".build-*")  # the killed start could not clean up its build's folder
    again = _start(kernel_dir, tmp_path / "again.log")  # the next start builds afresh, without the leftovers
    try:
        assert _wait_for(lambda: _builds(kernel_dir), 60), (tmp_path / "again.log").read_text()[-2000:]
        assert not abandoned.exists()
    finally:
        again.kill()
        again.wait()
    assert _wait_for(lambda: not _builds(kernel_dir), 10)


def test_a_second_start_waits_for_the_running_build_says_so_and_never_builds_beside_it(
        kernel_dir: Path, tmp_path: Path) -> None:
    most = [0]

    def watch() -> None:
        most[0] = max(most[0], len(_builds(kernel_dir)))

    first = _start(kernel_dir, tmp_path / "first.log")
    second = None
    try:
        (build,) = _wait_for(lambda: _builds(kernel_dir), 60) or [None]
        assert build is not None, (tmp_path / "first.log").read_text()[-2000:]
        second = _start(kernel_dir, tmp_path / "second.log")
        said = _wait_for(lambda: "being compiled into" in (tmp_path / "second.log").read_text(), 30, watch=watch)
        log = (tmp_path / "second.log").read_text()
        assert said, f"the second start did not say it waits for the running build: {log[-2000:]!r}"
        assert f"pid {first.pid}" in log and str(kernel_dir) in log, log
        assert _builds(kernel_dir) == [build]  # still waiting: no build of its own
        first.kill()  # the first start killed: its build ends, and only then does the second start build
        first.wait()
        taken = _wait_for(lambda: [b for b in _builds(kernel_dir) if b != build], 60, watch=watch)
        assert taken, f"the second start never built after the first was killed: {log[-2000:]!r}"
        watch()
        assert most[0] == 1, f"{most[0]} builds ran at once in {kernel_dir}"
    finally:
        for p in (first, second):
            if p is not None:
                p.kill()
                p.wait()
