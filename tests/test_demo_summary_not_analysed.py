"""A demo whose detectors could not be built says so in its summary, instead of `alerts 0 (none)`.

Session 44's first `urbanpulse demo` on a busy machine: the kernel build timed out, stream analytics
was off for the whole run, and the summary printed `alerts 0 (none)`: read as "the detectors found
nothing" (the same replay raises ~750 alerts). `StreamAnalytics.load_error` gives the reason and the
summary prints it; a run whose analytics loaded prints its alert counts as before.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from urbanpulse.analytics import StreamAnalytics
from urbanpulse.demo import print_accounting


def _service() -> SimpleNamespace:
    tally = {"received": 10, "stored": 10, "duplicates": 0, "quarantined": 0}
    return SimpleNamespace(metrics=SimpleNamespace(tally=tally, reasons={}))


def _analysed(not_analysed: str | None, alerts: dict[str, int]) -> dict[str, object]:
    return {"alerts": alerts, "not_analysed": not_analysed, "rollup_1m": 0, "rollup_1h": 0, "rollup_1d": 3}


FIXTURE_OK = settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FIXTURE_OK
@given(reason=st.text(min_size=1, max_size=80).filter(str.strip))
def test_a_summary_without_analysis_says_so_and_shows_no_alert_count(reason: str,
                                                                     capsys: pytest.CaptureFixture) -> None:
    assert print_accounting(_service(), [SimpleNamespace(sensor_id="s")], None, 1.0, _analysed(reason, {})) == 0
    out = capsys.readouterr().out
    assert "not analysed" in out and reason in out
    assert "(none)" not in out


@FIXTURE_OK
@given(alerts=st.dictionaries(st.sampled_from(["spike", "silence", "ewma"]), st.integers(1, 10_000)))
def test_a_summary_with_analysis_counts_the_alerts(alerts: dict[str, int], capsys: pytest.CaptureFixture) -> None:
    print_accounting(_service(), [SimpleNamespace(sensor_id="s")], None, 1.0, _analysed(None, alerts))
    out = capsys.readouterr().out
    assert "not analysed" not in out and f"{sum(alerts.values()):>10,}" in out


def test_load_error_names_what_stopped_the_build() -> None:
    async def states() -> list[str | None]:
        analytics = StreamAnalytics.__new__(StreamAnalytics)
        loop = asyncio.get_running_loop()
        seen = []
        for outcome in (None, "pending", RuntimeError("the kernel build did not finish within 900 s")):
            future = loop.create_future()
            if outcome is None:
                future.set_result(None)
            elif isinstance(outcome, Exception):
                future.set_exception(outcome)
            analytics._loading = future
            seen.append(analytics.load_error)
            if not future.done():
                future.cancel()
        return seen
    assert asyncio.run(states()) == [None, None, "RuntimeError: the kernel build did not finish within 900 s"]
