"""The live operations page in a real browser (Debian's chromium through chromium-driver and
Selenium) against a real `urbanpulse run` fed by a real mosquitto and storing in PostgreSQL.

Shown here: the page loads with no console errors and reaches no host but the service; every
registered sensor gets a marker, coloured and shaped from the stored latest value and status; a
reading published over MQTT changes the page without a reload; an injected anomaly shows an
alert that is acknowledged from the page, and the acknowledgement is in the database; a viewer
key cannot acknowledge and the page says why (the 403's reason); with unreachable tiles the map
falls back to a plain background, and the anonymous open-data scope shows only open sensors; a
metric whose range is unbounded (null bounds in /live/config) is drawn in one colour with no band
name, and its legend says how to get bands.
Screenshots of each step are saved under $URBANPULSE_TEST_ARTIFACTS (default
/tmp/urbanpulse-test-artifacts).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import browser
import services
from service_process import ServiceProcess, db_rows, wait_until

pytestmark = pytest.mark.integration

TOPIC = "city/live-page"
#: a catalogue metric with no bounds (``min: -inf``, ``max: inf``) and no ``live.scales`` entry
UNBOUNDED = "energy_meter"
#: sensors registered for the page: id -> (lat, lon, data class)
SENSORS = {
    "lp-dongsi": (39.929, 116.417, "open"),
    "lp-tiantan": (39.886, 116.407, "open"),
    "lp-guanyuan": (39.929, 116.339, "open"),
    "lp-wanliu": (39.987, 116.287, "open"),
    "lp-private": (39.914, 116.184, "restricted"),
}


def _config(dsn: str, broker: tuple[str, int], **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "database": {"dsn": dsn}, "log_level": "INFO",
        "mqtt": {"enabled": True, "host": broker[0], "port": broker[1], "topics": [f"{TOPIC}/#"],
                 "client_id": f"lp-{uuid.uuid4().hex[:8]}"},
        "detection": {"metrics": {"pm2_5": {"threshold": {"enabled": True, "high": 300, "clear_high": 250,
                                                          "severity": "critical"}}}},
        "live": {"interval_s": 0.2},
        # a metric with an unbounded range: /live/config serves its bounds as null (robust31)
        "validation": {"max_age_s": None, "metrics": {UNBOUNDED: {"unit": "Wh", "min": "-inf", "max": "inf"}}},
    }
    for section, values in extra.items():
        cfg.setdefault(section, {}).update(values)
    return cfg


def _register(svc: ServiceProcess) -> None:
    for sid, (lat, lon, cls) in SENSORS.items():
        body = {"name": sid.split("-", 1)[1].title(), "lat": lat, "lon": lon, "area": "beijing", "data_class": cls,
                "metrics": {"pm2_5": {"unit": "ug/m3", "interval_s": 600}}}  # silent after 30 min: never in a test
        r = httpx.put(f"{svc.url}/sensors/{sid}", json=body, headers=svc.auth("admin"), timeout=10)
        assert r.status_code in (200, 201), r.text


def _reading(sensor: str, value: float, ts_ms: int | None = None) -> bytes:
    return orjson.dumps({"sensor_id": sensor, "metric": "pm2_5", "ts": ts_ms or time.time_ns() // 1_000_000,
                         "value": value})


def _publish(broker: tuple[str, int], *payloads: bytes) -> None:
    services.publish_mqtt(broker[0], broker[1], f"{TOPIC}/pm", list(payloads))


def _stored(dsn: str, sensor: str, value: float) -> bool:
    return bool(db_rows(dsn, "SELECT 1 FROM readings r JOIN series s ON s.id = r.series_id "
                             "WHERE s.sensor_id = $1 AND r.value = $2", sensor, value))


@pytest.fixture(scope="module")
def stack(pg_dsn: str, mosquitto: services.Mosquitto, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[ServiceProcess, tuple[str, int]]]:
    why = browser.missing()
    if why:
        services.unavailable(why)
    broker = (mosquitto.host, mosquitto.port)
    name, dsn = services.create_database(pg_dsn, prefix="up_livepage")
    svc = ServiceProcess(_config(dsn, broker), tmp_path_factory.mktemp("livepage"))
    try:
        svc.start()
        _register(svc)
        # one stored reading per sensor before any page opens: the snapshot must show them
        base = time.time_ns() // 1_000_000
        _publish(broker, *[_reading(sid, 10.0 + 20 * k, base + k) for k, sid in enumerate(SENSORS)])
        wait_until(lambda: all(_stored(dsn, sid, 10.0 + 20 * k) for k, sid in enumerate(SENSORS)), 60,
                   what="the first reading of every sensor stored")
        yield svc, broker
    finally:
        svc.stop_quietly()
        services.drop_database(name, pg_dsn)


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    why = browser.missing()
    if why:
        services.unavailable(why)
    d = browser.chrome(tmp_path / "profile")
    try:
        yield d
    finally:
        d.quit()


def _marker(driver: Any, sensor: str) -> Any:
    return driver.find_element("css selector", f'.up-marker[data-sensor="{sensor}"]')


def _use_key(driver: Any, key: str) -> None:
    field = driver.find_element("id", "key")
    field.clear()
    field.send_keys(key)
    driver.find_element("id", "key-use").click()


def _alert_item(driver: Any, sensor: str) -> Any:
    items = driver.find_elements("css selector", f'#alert-list li[data-sensor="{sensor}"]')
    return items[0] if items else None


def _click(driver: Any, css: str, what: str) -> None:
    """Click the element ``css`` finds, found afresh on each try (the alert list is redrawn
    whenever an alert changes, which leaves earlier element references stale)."""
    def attempt() -> bool:
        driver.find_element("css selector", css).click()
        return True
    browser.wait_for(attempt, 20, what)


def _alert_button(driver: Any, sensor: str, action: str) -> None:
    _click(driver, f'#alert-list li[data-sensor="{sensor}"] button[data-action="{action}"]', f"{action} of {sensor}")


def test_operator_sees_live_readings_and_acknowledges_an_alert(stack, driver):
    svc, broker = stack
    driver.get(svc.url + "/")
    browser.wait_for(lambda: driver.execute_script("return document.getElementById('tiles-note').textContent"),
                     30, "the page to start")
    assert "API key" in driver.find_element("id", "conn").text  # no key, no open data: nothing fetched yet
    browser.screenshot(driver, "live-page-01-no-key")

    _use_key(driver, svc.key("operator"))
    browser.wait_for(lambda: driver.execute_script("return window.urbanpulseLive.ready"), 30, "the live snapshot")
    markers = driver.find_elements("css selector", ".up-marker[data-sensor]")
    assert sorted(m.get_attribute("data-sensor") for m in markers) == sorted(SENSORS)
    # the snapshot's stored values are on the markers; each is drawn as a shape with a band number
    first = _marker(driver, "lp-dongsi")
    assert float(first.get_attribute("data-value")) == 10.0
    assert first.get_attribute("data-status") == "ok" and first.find_element("css selector", "svg circle")
    assert "lp-dongsi" in first.get_attribute("title") and "ok" in first.get_attribute("title")
    assert driver.find_element("id", "map").get_attribute("data-tiles") == "none"
    # the sensor table says the same in text (the keyboard route to every sensor)
    # (it is redrawn every second: wait for the redraw after the snapshot)
    row = browser.wait_for(lambda: driver.find_element("css selector", '#sensor-table tr[data-sensor="lp-tiantan"]').text
                           if "30.0" in driver.find_element("css selector", '#sensor-table tr[data-sensor="lp-tiantan"]').text
                           else None, 20, "the sensor table with the snapshot's values")
    assert "30.0" in row and " ok " in f" {row} "
    browser.screenshot(driver, "live-page-02-markers")

    # a reading published over MQTT reaches the marker without a reload
    driver.execute_script("window.__sameDocument = true")
    _publish(broker, _reading("lp-guanyuan", 77.5))
    browser.wait_for(lambda: _marker(driver, "lp-guanyuan").get_attribute("data-value") == "77.5", 60,
                     "the published reading on the marker")
    assert driver.execute_script("return window.__sameDocument === true")
    assert driver.execute_script("return window.urbanpulseLive.frames") >= 1
    browser.screenshot(driver, "live-page-03-live-reading")

    # the sensor's chart has its history from /readings
    _click(driver, '#sensor-table button[data-select="lp-guanyuan"]', "the sensor's row button")  # table redraws
    browser.wait_for(lambda: int(driver.find_element("id", "chart").get_attribute("data-points") or 0) >= 2, 30,
                     "the chart of lp-guanyuan's history")

    # an injected anomaly (above the threshold) opens an alert the page shows, and marks the sensor
    _publish(broker, _reading("lp-wanliu", 950.0))
    text = browser.wait_for(lambda: _alert_item(driver, "lp-wanliu").text, 60, "the alert of lp-wanliu on the page")
    assert "critical" in text and "threshold" in text
    browser.wait_for(lambda: _marker(driver, "lp-wanliu").get_attribute("data-status") == "alerting", 20,
                     "lp-wanliu's marker shows alerting")
    assert _marker(driver, "lp-wanliu").find_element("css selector", "svg polygon")  # a triangle, not only a colour
    alert_id = int(browser.wait_for(lambda: _alert_item(driver, "lp-wanliu").get_attribute("data-alert"), 10, "id"))
    browser.screenshot(driver, "live-page-04-alert")

    _alert_button(driver, "lp-wanliu", "ack")
    browser.wait_for(lambda: "acknowledged" in driver.find_element("id", "action-msg").text, 20,
                     "the page to confirm the acknowledgement")
    rows = db_rows(svc.dsn, "SELECT state, acknowledged_by FROM alerts WHERE id = $1", alert_id)
    assert [tuple(r) for r in rows] == [("acknowledged", "test operator")]
    browser.wait_for(lambda: _alert_item(driver, "lp-wanliu").get_attribute("data-state") == "acknowledged", 20,
                     "the alert shown as acknowledged")
    browser.screenshot(driver, "live-page-05-acknowledged")

    # the chart of the alerting sensor marks its alert
    _alert_button(driver, "lp-wanliu", "show")
    browser.wait_for(lambda: int(driver.find_element("id", "chart").get_attribute("data-alerts") or 0) >= 1, 30,
                     "the alert marked on lp-wanliu's chart")
    # the data-quality panel is filled from /quality
    browser.wait_for(lambda: driver.find_elements("css selector", "#quality-areas tbody tr"), 30, "the quality panel")
    browser.screenshot(driver, "live-page-06-chart-and-quality")

    # maintenance and resolve from the page, both in the database, the marker a square while in maintenance
    _alert_button(driver, "lp-wanliu", "maint")
    browser.wait_for(lambda: "Maintenance for lp-wanliu" in driver.find_element("id", "action-msg").text, 20,
                     "the page to confirm the maintenance window")
    windows = db_rows(svc.dsn, "SELECT ends_at - starts_at AS span FROM maintenance_windows WHERE sensor = 'lp-wanliu'")
    assert [r["span"].total_seconds() for r in windows] == [3600.0]
    browser.wait_for(lambda: _marker(driver, "lp-wanliu").get_attribute("data-status") == "maintenance", 20,
                     "lp-wanliu's marker shows maintenance")
    assert _marker(driver, "lp-wanliu").find_element("css selector", "svg rect")
    _alert_button(driver, "lp-wanliu", "resolve")
    browser.wait_for(lambda: _alert_item(driver, "lp-wanliu") is None, 20, "the resolved alert to leave the list")
    assert db_rows(svc.dsn, "SELECT state, resolved_by FROM alerts WHERE id = $1", alert_id)[0]["state"] == "resolved"
    browser.screenshot(driver, "live-page-07-maintenance-resolved")
    assert browser.console_errors(driver) == []


def test_the_page_works_from_the_keyboard_and_labels_every_control(stack, driver):
    from selenium.webdriver.common.keys import Keys

    svc, _ = stack
    driver.get(svc.url + "/")
    browser.wait_for(lambda: driver.execute_script("return document.readyState") == "complete", 30, "the page")
    # every form control has a label the browser exposes (label[for], aria-label or aria-labelledby)
    unlabelled = driver.execute_script("""
        return [...document.querySelectorAll('input, select, button, textarea')].filter((el) =>
            !((el.labels && el.labels.length) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
              || (el.tagName === 'BUTTON' && el.textContent.trim()))).map((el) => el.outerHTML)""")
    assert unlabelled == []
    # the key is typed and submitted with the keyboard alone
    field = driver.find_element("id", "key")
    field.send_keys(svc.key("viewer"), Keys.ENTER)
    browser.wait_for(lambda: driver.execute_script("return window.urbanpulseLive.ready"), 30, "the live snapshot")
    # a sensor is opened from the table with Enter, and its chart is described in text
    button = browser.wait_for(lambda: driver.find_element("css selector", 'button[data-select="lp-dongsi"]'), 10,
                              "the sensor table")
    button.send_keys(Keys.ENTER)
    browser.wait_for(lambda: "lp-dongsi" in driver.find_element("id", "detail-h").text, 20, "the sensor's panel")
    desc = browser.wait_for(lambda: driver.find_element("id", "chart-desc").get_attribute("textContent"), 20,
                            "the chart's text description")
    assert "pm2_5 of lp-dongsi" in desc
    # the map takes keyboard focus (Leaflet pans and zooms with arrows and +/-)
    assert driver.find_element("id", "map").get_attribute("tabindex") == "0"
    browser.screenshot(driver, "live-page-09-keyboard")
    assert browser.console_errors(driver) == []


def test_a_viewer_key_cannot_acknowledge_and_the_page_says_why(stack, driver):
    svc, broker = stack
    _publish(broker, _reading("lp-tiantan", 990.0))
    wait_until(lambda: db_rows(svc.dsn, "SELECT id FROM alerts WHERE sensor_id = 'lp-tiantan' AND state = 'open'"),
               60, what="an open alert of lp-tiantan")
    driver.get(svc.url + "/")
    browser.wait_for(lambda: driver.execute_script("return document.readyState") == "complete", 30, "the page")
    _use_key(driver, svc.key("viewer"))
    alert_id = int(browser.wait_for(lambda: _alert_item(driver, "lp-tiantan").get_attribute("data-alert"), 60,
                                    "the alert of lp-tiantan"))
    assert browser.console_errors(driver) == []
    _alert_button(driver, "lp-tiantan", "ack")
    key_set = "Key set for this tab."  # what _use_key left there: the answer to the click replaces it

    def answer() -> str | None:
        text = driver.find_element("id", "action-msg").text
        return text if text and text != key_set else None

    msg = browser.wait_for(answer, 20, "the page's answer")
    assert "Not allowed (403)" in msg and "role viewer" in msg and "operator" in msg, msg
    browser.screenshot(driver, "live-page-08-viewer-403")
    rows = db_rows(svc.dsn, "SELECT state, acknowledged_by FROM alerts WHERE id = $1", alert_id)
    assert [tuple(r) for r in rows] == [("open", None)]
    # the one console error is the refused request itself
    errors = browser.console_errors(driver)
    assert len(errors) == 1 and "403" in errors[0]["message"] and f"/alerts/{alert_id}/ack" in errors[0]["message"], errors


def test_unreachable_tiles_fall_back_and_open_data_shows_only_open_sensors(stack, driver, tmp_path: Path):
    svc, broker = stack
    # a second service on the same database: tiles from a host that does not resolve, open data on
    cfg = _config(svc.dsn, broker, api={"open_data": True},
                  live={"tiles": {"url": "https://tiles.example.invalid/{z}/{x}/{y}.png", "attribution": "test"}})
    cfg["mqtt"]["enabled"] = False
    cfg["detection"] = {"enabled": False}
    other = ServiceProcess(cfg, tmp_path).start()
    try:
        driver.get(other.url + "/")
        browser.wait_for(lambda: driver.execute_script("return window.urbanpulseLive.ready"), 30,
                         "the anonymous snapshot")
        shown = sorted(m.get_attribute("data-sensor") for m in driver.find_elements("css selector", ".up-marker[data-sensor]"))
        assert shown == sorted(s for s, (_, _, cls) in SENSORS.items() if cls == "open")
        browser.wait_for(lambda: driver.find_element("id", "map").get_attribute("data-tiles") == "fallback", 30,
                         "the plain-background fallback")
        assert "cannot be reached" in driver.find_element("id", "tiles-note").text
        # detection is off on this service: the page says alerts do not run, and polls snapshots
        assert "do not run" in driver.find_element("id", "alert-list").text
        browser.screenshot(driver, "live-page-10-open-data-no-tiles")
        # the only console errors are the tiles that could not be fetched
        errors = browser.console_errors(driver)
        assert errors and all("tiles.example.invalid" in e["message"] for e in errors), errors
    finally:
        other.stop_quietly()


def test_a_metric_without_bounds_is_drawn_in_one_colour_with_a_legend_that_says_why(stack, driver):
    """/live/config serves null for an infinite bound (robust31); app.js had a branch for it that
    no browser ran: the legend said "below undefined" and every value was named band 1, "low"."""
    svc, broker = stack
    assert httpx.get(f"{svc.url}/live/config", timeout=10).json()["metrics"][UNBOUNDED]["min"] is None
    sensor, values = "lp-meter", (-12.5, 3.0e9)  # far apart: with bands they could not share one
    body = {"name": "Meter", "lat": 39.95, "lon": 116.35, "area": "beijing", "data_class": "restricted",
            "metrics": {UNBOUNDED: {"unit": "Wh", "interval_s": 600}}}
    r = httpx.put(f"{svc.url}/sensors/{sensor}", json=body, headers=svc.auth("admin"), timeout=10)
    assert r.status_code in (200, 201), r.text
    try:
        now = time.time_ns() // 1_000_000
        services.publish_mqtt(broker[0], broker[1], f"{TOPIC}/energy", [orjson.dumps(
            {"sensor_id": sensor, "metric": UNBOUNDED, "ts": now, "value": values[0]})])
        wait_until(lambda: _stored(svc.dsn, sensor, values[0]), 60, what="the meter's first reading stored")
        driver.get(svc.url + "/")
        browser.wait_for(lambda: driver.execute_script("return document.readyState") == "complete", 30, "the page")
        _use_key(driver, svc.key("operator"))
        browser.wait_for(lambda: driver.execute_script("return window.urbanpulseLive.ready"), 30, "the live snapshot")
        select = driver.find_element("id", "colour-metric")
        assert UNBOUNDED in [o.get_attribute("value") for o in select.find_elements("css selector", "option")]
        driver.execute_script("const s = document.getElementById('colour-metric'); s.value = arguments[0];"
                              "s.dispatchEvent(new Event('change'));", UNBOUNDED)
        legend = browser.wait_for(lambda: (t := driver.find_element("id", "legend").text) and UNBOUNDED in t and t,
                                  20, "the legend of the unbounded metric")
        assert "undefined" not in legend and "NaN" not in legend and f"live.scales.{UNBOUNDED}" in legend, legend
        assert "low" not in legend.split("maintenance", 1)[-1], legend  # no band names for it
        marker = browser.wait_for(lambda: (m := _marker(driver, sensor)).get_attribute("data-value") == str(values[0])
                                  and m, 30, "the meter's marker with its stored value")
        first_band = marker.get_attribute("data-band")
        assert first_band not in ("-1", "0", "1", "2", "3", "4"), first_band  # neither "no reading" nor a band
        assert "no colour scale" in marker.get_attribute("title") and "undefined" not in marker.get_attribute("title")
        # a reading far from the first, published live: the same one colour, no band name
        services.publish_mqtt(broker[0], broker[1], f"{TOPIC}/energy", [orjson.dumps(
            {"sensor_id": sensor, "metric": UNBOUNDED, "ts": now + 1000, "value": values[1]})])
        browser.wait_for(lambda: _marker(driver, sensor).get_attribute("data-value") == str(int(values[1])), 60,
                         "the live reading on the meter's marker")
        assert _marker(driver, sensor).get_attribute("data-band") == first_band
        row = browser.wait_for(lambda: (t := driver.find_element("css selector", f'#sensor-table tr[data-sensor="{sensor}"]'
                                                                 ).text) and "no colour scale" in t and t,
                               20, "the sensor table row of the meter")
        assert "undefined" not in row
        browser.screenshot(driver, "live-page-11-unbounded-metric")
        assert browser.console_errors(driver) == []
    finally:
        httpx.delete(f"{svc.url}/sensors/{sensor}", headers=svc.auth("admin"), timeout=10)
