"""What every held-out-style family generator promises of a draw (blind40's and blind41's sets alike), so the
generator tests check one contract instead of writing it twice: a seed always draws the same pair, the injected
copy is the clean one up to the onset and differs from it within the window the sweep grants (`families.within`),
and the one NAB window the sweep builds (`nab_score.windows_from_points`) is centred on the onset, after the
probation."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import nab_score  # noqa: E402
from corpus import families  # noqa: E402


def same_draw(a: families.Draw, b: families.Draw) -> bool:
    """Whether two draws are the same pair (onset, parameters, clock and both copies)."""
    return (a.onset == b.onset and a.params == b.params and np.array_equal(a.ts_us, b.ts_us)
            and np.array_equal(a.clean, b.clean) and np.array_equal(a.injected, b.injected))


def check_draw_contract(generator: ModuleType, family: str, kind: str, seed: int) -> families.Draw:
    """Assert the contract above for `generator.draw(family, kind, seed)`; returns the draw for further checks."""
    d = generator.draw(family, kind, seed)
    assert same_draw(d, generator.draw(family, kind, seed)), f"{family}:{kind} seed {seed} drew two pairs"
    assert len(d.ts_us) == len(d.clean) == len(d.injected) == families.ROWS
    assert d.onset == families.ONSET
    assert np.all(np.diff(d.ts_us) > 0), "timestamps must increase"
    assert np.isfinite(d.clean).all() and np.isfinite(d.injected).all()
    assert np.array_equal(d.clean[:d.onset], d.injected[:d.onset]), \
        f"{family}:{kind} seed {seed}: the injected copy differs before the onset {d.onset}"
    window = slice(d.onset, d.onset + families.within(kind))
    assert np.any(d.clean[window] != d.injected[window]), \
        f"{family}:{kind} seed {seed}: nothing injected within {families.within(kind)} readings of the onset"
    [(start, end)] = nab_score.windows_from_points(d.ts_us, [d.onset])
    assert start >= nab_score.probation_length(len(d.ts_us)), "the window must survive NAB's probation"
    assert start < d.onset < end and abs((start + end) / 2 - d.onset) <= 1, "the window is centred on the onset"
    return d
