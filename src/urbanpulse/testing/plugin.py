"""pytest plugin of the conformance kit: ``pytest_plugins = ["urbanpulse.testing.plugin"]``.

Fixtures:
  format_conformance   the function :func:`urbanpulse.testing.kit.check_format`
  source_conformance   the coroutine function :func:`urbanpulse.testing.kit.check_source`
"""

from __future__ import annotations

import pytest

from urbanpulse.testing.kit import check_format, check_source


@pytest.fixture
def format_conformance():  # noqa: ANN201
    """``format_conformance(fmt, valid=[...])`` checks a format against the contract."""
    return check_format


@pytest.fixture
def source_conformance():  # noqa: ANN201
    """``await source_conformance(make_source, publish)`` checks a source against the contract."""
    return check_source
