"""The development report's per-station view of GECCO and 3W (benchmarks/detection_devset.stations):
their labels belong to a station (a GECCO segment, a 3W instance), so each station is scored as one
file whose anomaly_score is the largest of its channels' at each time. Property tests over
generated channel files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import detection_devset as devset  # noqa: E402
import nab_score  # noqa: E402

MIN_US = 60_000_000


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 5), st.sampled_from(["gecco", "3w"]))
def test_a_station_scores_the_largest_channel_score_at_each_time_with_the_same_onsets(
        seed: int, n_channels: int, dataset: str) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    grid = 1_700_000_000_000_000 + np.arange(n, dtype=np.int64) * MIN_US
    onset_row = int(rng.integers(100, n - 20))
    files, scores = [], {}
    for c in range(n_channels):
        keep = rng.random(n) < 0.9
        keep[onset_row] = True  # every channel has the onset's minute (as GECCO's and 3W's rows do)
        ts = grid[keep]
        stem = f"Cl_{c}_07" if dataset == "gecco" else f"1_WELL-0000{seed % 3}_2014_P-TPT{c}"  # one station
        row = int(np.searchsorted(ts, grid[onset_row]))
        files.append(devset._from_onsets(dataset, stem, ts, rng.normal(size=len(ts)), [row], ["x"]))
        scores[files[-1].name] = rng.random(len(ts)) * (rng.random(len(ts)) < 0.1)
    other = devset._from_onsets("skab", "run_1", grid, rng.normal(size=n), [onset_row], ["x"])
    scores[other.name] = rng.random(n)
    out_files, out_scores = devset.stations(files + [other], scores, "max")  # the uncorrected largest score
    # other datasets pass through unchanged
    assert other in out_files and out_scores[other.name] is scores[other.name]
    stations = [f for f in out_files if f.dataset == dataset]
    assert len(stations) == 1
    st_file = stations[0]
    union = np.unique(np.concatenate([f.ts_us for f in files]))
    assert np.array_equal(st_file.ts_us, union)
    expect = np.zeros(len(union))
    for f in files:
        for t, s in zip(f.ts_us, scores[f.name]):
            k = int(np.searchsorted(union, t))
            expect[k] = max(expect[k], s)
    assert np.array_equal(out_scores[st_file.name], expect)
    assert st_file.onsets_us == [int(grid[onset_row])]
    assert st_file.windows == nab_score.windows_from_points(union, [int(np.searchsorted(union, grid[onset_row]))])


def test_station_keys_keep_channel_names_with_underscores_apart_from_the_segment() -> None:
    f = devset.DevFile("gecco", "gecco/Fm_2_13", np.zeros(1, np.int64), np.zeros(1))
    assert devset.station_key(f) == "gecco/segment_13"
    f = devset.DevFile("3w", "3w/1_WELL-00001_20140124213136_P-TPT", np.zeros(1, np.int64), np.zeros(1))
    assert devset.station_key(f) == "3w/1_WELL-00001_20140124213136"
    assert devset.station_key(devset.DevFile("skab", "skab/x", np.zeros(1, np.int64), np.zeros(1))) is None
