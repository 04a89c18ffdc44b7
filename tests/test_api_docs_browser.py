"""/docs in a real browser (headless Chromium) that can reach no host but the service: Swagger
UI must render the API's operations from the service's own files (with a CDN it was blank)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

import services
from urbanpulse.api.app import build_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def docs_url() -> Iterator[str]:
    port = services.free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/docs"
    finally:
        server.should_exit = True
        thread.join(10)


def test_docs_render_in_a_browser_that_reaches_no_other_host(docs_url: str, tmp_path: Path):
    if CHROMIUM is None:
        services.unavailable("chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")
    assert httpx.get(docs_url).status_code == 200
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}",
         # every host name but the service's address fails to resolve: as on a network without internet
         "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
         "--virtual-time-budget=20000", "--dump-dom", docs_url],
        capture_output=True, text=True, timeout=180)
    dom = out.stdout
    assert out.returncode == 0 and "swagger-ui" in dom, (out.returncode, out.stderr[-2000:])
    assert "Failed to load API definition" not in dom and "Unable to render" not in dom, dom[-3000:]
    for summary in ("List alerts, newest first", "Make an API key (shown once)", "Add a maintenance window"):
        assert summary in dom, f"{summary!r} not rendered; page: {dom[-3000:]}"
    assert dom.count('class="opblock ') >= 10  # one block per operation
