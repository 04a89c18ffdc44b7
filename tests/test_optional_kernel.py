"""OptionalKernel (optional_kernel.py): a compiled kernel the service works without is loaded once,
warmed up by one call, and given up with a log line (its pure-Python path serving) where the build,
the import or the warm-up call fails."""

from __future__ import annotations

import logging
from types import ModuleType

import pytest

from urbanpulse.optional_kernel import OptionalKernel

RECORDS = "urbanpulse.connectors._records_kernel"


def test_a_kernel_whose_warm_up_fails_is_given_up_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    def broken(mod: ModuleType) -> None:
        raise ValueError("no such function")

    k = OptionalKernel(RECORDS, broken, "the slow path serves", "test-load")
    with caplog.at_level(logging.WARNING, logger="urbanpulse.optional_kernel"):
        assert k.load() is None
    assert k.module is None
    assert "no such function" in caplog.text and "the slow path serves" in caplog.text


def test_an_unknown_kernel_is_given_up_not_raised() -> None:
    assert OptionalKernel("urbanpulse.no_such_kernel", lambda mod: None, "-", "test-load").load() is None


def test_a_kernel_is_loaded_and_warmed_up_once_and_started_on_one_thread() -> None:
    calls: list[ModuleType] = []
    k = OptionalKernel(RECORDS, calls.append, "-", "test-load")
    k.start_loading()
    k.start_loading()  # a second source opening: no second thread
    thread = k._loading  # noqa: SLF001
    assert thread is not None
    thread.join(600)
    assert k.module is not None and calls == [k.module]
    assert k.load() is k.module and len(calls) == 1  # loaded: no second warm-up
    k.start_loading()
    assert k._loading is thread  # noqa: SLF001
