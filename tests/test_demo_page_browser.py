"""What a person sees after README's first command: ``urbanpulse demo --serve`` (defaults, embedded
PostgreSQL) in Debian's real chromium. A visitor without a key gets the twelve stations on the
map at their places, reporting (the live clock: not "silent"), with no console errors; with the
printed operator key the injected incidents' alerts are listed and one is acknowledged from the
page. Screenshots go to $URBANPULSE_TEST_ARTIFACTS (demo-page-*.png)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import browser
import services
from demo_process import DemoProcess, sensor
from urbanpulse.demo_incidents import Spike, default_schedule
from urbanpulse.demo_stations import load_sites


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Iterator[DemoProcess]:
    d = DemoProcess(tmp_path_factory.mktemp("demo-page"))
    try:
        yield d.wait_ready()
    finally:
        d.stop_quietly()


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    why = browser.missing()
    if why:
        services.unavailable(why)
    d = browser.chrome(tmp_path / "profile", height=1300)
    try:
        yield d
    finally:
        d.quit()


def _statuses(driver: Any) -> dict[str, str]:
    return {m.get_attribute("data-sensor"): m.get_attribute("data-status")
            for m in driver.find_elements("css selector", ".up-marker")}


def test_a_visitor_sees_the_stations_reporting_and_an_operator_acknowledges_from_the_page(demo, driver) -> None:
    driver.get(demo.url + "/")
    stations = {sensor(name) for name in load_sites()}
    browser.wait_for(lambda: set(_statuses(driver)) == stations, 30, "a marker for each of the twelve stations")
    # reporting, so not "silent" (the injected silence takes one station at a time; real gaps another)
    browser.wait_for(lambda: sum(s != "silent" for s in _statuses(driver).values()) >= 10, 30,
                     "the stations shown as reporting")
    assert browser.console_errors(driver) == []
    browser.screenshot(driver, "demo-page-01-visitor")

    field = driver.find_element("id", "key")
    field.send_keys(demo.key())
    driver.find_element("id", "key-use").click()
    spike = next(i for i in default_schedule(sorted(load_sites()), 48, 35064) if isinstance(i, Spike))
    spiked = sensor(spike.station)
    css = f'#alert-list li[data-sensor="{spiked}"]'
    browser.wait_for(lambda: driver.find_elements("css selector", css), 60, "the spiked station's alerts listed")
    browser.screenshot(driver, "demo-page-02-operator-alerts")

    def ack() -> str:
        item = next(li for li in driver.find_elements("css selector", css) if li.get_attribute("data-state") == "open")
        alert_id = item.get_attribute("data-alert")
        item.find_element("css selector", 'button[data-action="ack"]').click()
        return alert_id
    alert_id = browser.wait_for(ack, 30, "an open alert of the spiked station to acknowledge")
    browser.wait_for(lambda: "acknowledged" in driver.find_element("id", "action-msg").text, 20,
                     "the page to confirm the acknowledgement")
    r = httpx.get(f"{demo.url}/alerts/{alert_id}", headers={"Authorization": f"Bearer {demo.key()}"}, timeout=10)
    assert (r.json()["state"], r.json()["acknowledged_by"]) == ("acknowledged", "demo operator")
    assert browser.console_errors(driver) == []
    browser.screenshot(driver, "demo-page-03-acknowledged")
