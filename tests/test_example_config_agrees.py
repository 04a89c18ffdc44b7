"""The example config, the docs and the settings' defaults say the same thing (issue 11 item 5: "no silent
traps in the settings; the docs' severity fallback and the example config agree").

Why: an operator copies config/urbanpulse.example.yaml and the YAML blocks of docs/detection.md and
docs/alerts.md. If the commented `pm2_5` threshold line did not give a working critical alert, or the
fallback severities there differed from what a detector's own settings give, the copy would silently do
something else than it says."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import yaml
from hypothesis import given, settings as hsettings, strategies as st

from urbanpulse.alerts.settings import AlertSettings
from urbanpulse.config import load_settings
from urbanpulse.detect import DetectionSettings, DetectorBank
from urbanpulse.detect.settings import DETECTOR_NAMES, DetectorParams

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config" / "urbanpulse.example.yaml"
MIN_US = 60_000_000
T0 = 1_700_000_000_000_000


def _doc_yaml(doc: str) -> dict:
    """The first ```yaml block after the doc's "## Configuration" heading."""
    text = (REPO / "docs" / doc).read_text()
    m = re.search(r"^## Configuration\b.*?```yaml\n(.*?)```", text, re.S | re.M)
    assert m, f"docs/{doc} has no yaml block under '## Configuration'"
    return yaml.safe_load(m.group(1))


def _commented_pm25_patch() -> dict:
    """The example config's commented per-metric line (`#   pm2_5: {threshold: {...}}`), uncommented."""
    line = next(ln for ln in EXAMPLE.read_text().splitlines() if re.match(r"\s*#\s+pm2_5:", ln))
    return yaml.safe_load(line.split("#", 1)[1].strip())["pm2_5"]


def _defaults_severity() -> dict[str, str]:
    p = DetectorParams()
    return {n: getattr(p, n).severity for n in DETECTOR_NAMES}


def test_the_example_config_loads_and_its_fallback_severities_are_the_detectors_own() -> None:
    s = load_settings(EXAMPLE)
    assert s.alerts.severity == AlertSettings().severity == _defaults_severity()


def test_the_alerts_doc_fallback_severities_are_the_detectors_own() -> None:
    block = _doc_yaml("alerts.md")["alerts"]
    assert block["severity"] == _defaults_severity()
    assert block["default_severity"] == AlertSettings().default_severity


def test_the_detection_doc_block_shows_the_defaults_and_loads() -> None:
    block = _doc_yaml("detection.md")["detection"]
    defaults = DetectorParams().model_dump()
    for det, fields in block["defaults"].items():
        for name, value in fields.items():
            assert defaults[det][name] == value, \
                f"docs/detection.md: defaults.{det}.{name} {value} != {defaults[det][name]}"
    DetectionSettings.model_validate(block)  # every override there validates


@given(st.floats(0.0, 5000.0, allow_nan=False))
@hsettings(max_examples=40, deadline=None)
def test_the_example_configs_commented_threshold_line_is_a_working_critical_alert(value: float) -> None:
    """Uncommented as it stands (limits, no `enabled: true`), the line turns the threshold detector on with
    severity critical: a reading above `high` decides, one at or below it does not."""
    patch = _commented_pm25_patch()
    assert "enabled" not in patch["threshold"]  # the trap the issue names: limits alone
    high = patch["threshold"]["high"]
    bank = DetectorBank(DetectionSettings(metrics={"pm2_5": patch}))
    bank.assign(np.arange(1), ["station-1"], ["pm2_5"])
    assert bank.severity(0, "threshold") == "critical"
    col = DETECTOR_NAMES.index("threshold")
    x = np.array([20.0, 25.0, value])
    sc = bank.score(np.zeros(3, np.int64), T0 + np.arange(3, dtype=np.int64) * MIN_US, x)
    assert bool(sc.decision[-1, col]) == (value > high)
