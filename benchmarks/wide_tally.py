"""Counting a property's failing draws over a wide run (benchmarks/*_wide_run.py), not stopping at the first.

Why: a test stops at its first counterexample, so "fails on main" says nothing about how often; the wide-run
scripts call each draw's check through one `FailureTally`, which counts the draws, the failed ones and the last
line of each failure's message.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hypothesis import HealthCheck, Phase, given, seed as hseed, settings


class FailureTally:
    """Draws checked, failed (an AssertionError), and how often each failure message came; `fatal` exception types
    end the run instead (a tree that lacks what the property calls is not a failing draw)."""

    def __init__(self, fatal: tuple[type[BaseException], ...] = ()) -> None:
        self.examples = 0
        self.failed = 0
        self.whys: dict[str, int] = {}
        self.fatal = fatal
        self.started = time.perf_counter()

    def __call__(self, check: Callable[[], object]) -> None:
        """Run one draw's check and count it."""
        try:
            check()
        except AssertionError as exc:
            self.failed += 1
            why = str(exc).split("\n")[-1][:80] or "assert"
            self.whys[why] = self.whys.get(why, 0) + 1
        except self.fatal as exc:
            raise SystemExit(f"{exc}") from exc
        self.examples += 1

    def summary(self, top: int | None = None) -> dict:
        """The counts and the seconds since the tally began, for the run's JSON line; with `top`, only that many
        of the most frequent failure messages."""
        whys = self.whys if top is None else dict(sorted(self.whys.items(), key=lambda kv: -kv[1])[:top])
        return {"examples": self.examples, "failed": self.failed, "whys": whys,
                "seconds": round(time.perf_counter() - self.started, 1)}


def wide(n: int, run_seed: int, **strategies: object) -> Callable[[Callable], Callable]:
    """The hypothesis decorator of a wide run: `n` fresh draws of `strategies` from `run_seed`, generation only (no
    shrinking, no example database, not derandomized, no health check). Why: the tests draw derandomized examples;
    a wide run is the same body over draws they never make, and every script should mean the same by it."""
    def decorate(fn: Callable) -> Callable:
        return hseed(run_seed)(settings(max_examples=n, derandomize=False, database=None, deadline=None,
                                        phases=[Phase.generate], suppress_health_check=list(HealthCheck))(
            given(**strategies)(fn)))
    return decorate
