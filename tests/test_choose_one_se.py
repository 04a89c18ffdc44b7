"""benchmarks/detection_choose.py's one-standard-error column (choice32): for each held-out dataset, the
simplest second-stage candidate whose training score is within one bootstrap standard error of the best one's.
Properties over generated files and candidate scores: the pick is within the band, nothing simpler is, and
candidates that score alike give the simplest."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import detection_choose as dc  # noqa: E402
import detection_dev as dd  # noqa: E402
import detection_devset as devset  # noqa: E402
import nab_score  # noqa: E402

MIN_US = 60_000_000


def _files(rng: np.random.Generator) -> list[devset.DevFile]:
    out = []
    for ds in devset.DATASETS:
        for j in range(3):
            n = int(rng.integers(200, 400))
            ts = 1_700_000_000_000_000 + np.arange(n, dtype=np.int64) * MIN_US
            out.append(devset._from_onsets(ds, f"f{j}", ts, np.zeros(n), [int(rng.integers(80, n - 20))], ["x"]))
    return out


def _scores(rng: np.random.Generator, files, signal: float) -> dict[str, np.ndarray]:
    sc = {}
    for f in files:
        s = np.where(rng.random(len(f.values)) < 0.05, rng.uniform(0.9, 1.0, len(f.values)), 0.0)
        for lo, hi in f.windows:
            if rng.random() < signal:
                s[int(rng.integers(lo, hi + 1))] = rng.uniform(0.95, 1.0)
        sc[f.name] = s
    return sc


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.sampled_from(sorted(dc.RECAL_CANDIDATES)), min_size=2, max_size=5,
                                        unique=True))
def test_the_one_se_pick_is_the_simplest_candidate_within_one_standard_error_of_the_best(
        seed: int, names: list[str]) -> None:
    rng = np.random.default_rng(seed)
    files = _files(rng)
    runs = {n: _scores(rng, files, float(rng.uniform(0.3, 0.9))) for n in names}
    out = dc.lodo_1se(files, runs)
    for ds in devset.DATASETS:
        r = out[ds]
        train = [f for f in files if f.dataset != ds]
        tr = {n: nab_score.score_corpus(*dd._series(train, runs[n])).normalized for n in names}
        band = max(tr.values()) - r["se"]
        assert r["se"] >= 0 and tr[r["chosen"]] >= band - 1e-9
        assert all(tr[n] < band - 1e-9 for n in names if dc.simplicity(n) < dc.simplicity(r["chosen"]))


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.sampled_from(sorted(dc.RECAL_CANDIDATES)), min_size=2, max_size=6,
                                        unique=True))
def test_candidates_that_score_alike_give_the_simplest(seed: int, names: list[str]) -> None:
    rng = np.random.default_rng(seed)
    files = _files(rng)
    same = _scores(rng, files, 0.7)
    out = dc.lodo_1se(files, {n: same for n in names})
    simplest = min(names, key=dc.simplicity)
    assert all(out[ds]["chosen"] == simplest for ds in devset.DATASETS)


def test_simplicity_orders_by_the_priors_weight_in_emissions_then_memory() -> None:
    order = sorted(dc.RECAL_CANDIDATES, key=dc.simplicity)
    assert order[0] == "off" and order[-1] == "l0999_p1k"
    assert order.index("p20k") < order.index("p5k") < order.index("p1k") < order.index("p200")
    assert order.index("m50k") < order.index("p5k") < order.index("m5k")
