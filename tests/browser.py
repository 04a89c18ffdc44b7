"""Debian's real chromium driven by chromium-driver through Selenium, for the live page's tests
and benchmarks/live_page.py: headless, a fresh profile, every host name but 127.0.0.1 unresolvable
(as in an offline control room), and the browser console captured."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
#: where screenshots go (printed by the tests; .ci/run sets it)
ARTIFACTS = Path(os.environ.get("URBANPULSE_TEST_ARTIFACTS", "/tmp/urbanpulse-test-artifacts"))


def missing() -> str | None:
    """Why a browser cannot be driven here, or None."""
    if CHROMIUM is None:
        return "chromium is not installed (Debian: apt-get install chromium); .ci/run installs it"
    if CHROMEDRIVER is None:
        return "chromedriver is not installed (Debian: apt-get install chromium-driver); .ci/run installs it"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]'"
    return None


def chrome(profile: Path, width: int = 1400, height: int = 1000) -> Any:
    """A new headless chromium session (a ``selenium.webdriver.Chrome``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--disable-quic", f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                # every host name but the service's address fails to resolve: no internet, no CDN
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def console_errors(driver: Any) -> list[dict[str, Any]]:
    """Browser console entries of level SEVERE since the last call (errors, failed loads)."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll until ``predicate()`` is truthy; AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # noqa: BLE001 - an element not there yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def screenshot(driver: Any, name: str) -> Path:
    """Save a PNG of the page under :data:`ARTIFACTS` and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path
