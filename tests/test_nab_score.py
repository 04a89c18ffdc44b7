"""NAB scorer (benchmarks/nab_score.py) on hand-made cases whose scores are derived by hand.

Reference file for most cases: 1000 hourly rows, so the probationary period is
min(floor(0.15 * 1000), 750) = 150 rows, and one labelled window covering rows 500..599
(width 100). scaledSigmoid(x) = 2 / (1 + e^(5x)) - 1 = -tanh(5x / 2), so a detection on row i of
the window earns tanh(2.5 (599 - i + 1) / 100) / tanh(2.5); a false positive with no window
before it costs A_fp; the null detector (nothing detected) scores -A_fn per window.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import nab_score  # noqa: E402
from nab_score import FileSeries, score_corpus, windows_from_points  # noqa: E402

N = 1000
T0 = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
HOUR = 3_600_000_000
WINDOW = (500, 599)


def _series(name: str = "f.csv", n: int = N, hits: dict[int, float] | None = None) -> FileSeries:
    scores = np.zeros(n)
    for i, v in (hits or {}).items():
        scores[i] = v
    return FileSeries(name, T0 + HOUR * np.arange(n, dtype=np.int64), scores)


def _score(hits: dict[int, float], profile: str = "standard", windows=(WINDOW,)):
    return score_corpus({"f.csv": _series(hits=hits)}, {"f.csv": list(windows)}, profile)


def test_probation_is_15_percent_capped_at_750_rows():
    assert nab_score.probation_length(1000) == 150
    assert nab_score.probation_length(4999) == 749
    assert nab_score.probation_length(20000) == 750


def test_scaled_sigmoid_reference_points():
    assert float(nab_score.scaled_sigmoid(-1.0)) == pytest.approx(math.tanh(2.5))  # 0.98661
    assert float(nab_score.scaled_sigmoid(-0.5)) == pytest.approx(0.84828, abs=1e-5)
    assert float(nab_score.scaled_sigmoid(0.0)) == 0.0
    assert float(nab_score.scaled_sigmoid(3.5)) == -1.0


def test_perfect_detector_scores_100():
    result = _score({500: 1.0})
    assert result.raw == pytest.approx(1.0)
    assert result.null == pytest.approx(-1.0)
    assert result.perfect == 1.0
    assert result.normalized == pytest.approx(100.0)


def test_null_detector_scores_0():
    result = _score({})
    assert result.threshold == nab_score.NO_DETECTION_THRESHOLD
    assert result.raw == pytest.approx(-1.0)
    assert result.normalized == pytest.approx(0.0)


def test_detection_at_window_start_beats_detection_at_window_end():
    start, end = _score({500: 1.0}), _score({599: 1.0})
    # Last row of the window: position -1/100 -> tanh(0.025) / tanh(2.5) = 0.025334.
    assert end.raw == pytest.approx(math.tanh(0.025) / math.tanh(2.5), rel=1e-9)
    assert end.normalized == pytest.approx(100 * (1 + 0.025334) / 2, abs=1e-3)
    assert start.raw > end.raw
    # Halfway: position -0.5 -> 0.84828 / 0.98661 = 0.85980.
    assert _score({550: 1.0}).raw == pytest.approx(math.tanh(1.25) / math.tanh(2.5))


def test_only_the_first_detection_in_a_window_counts():
    assert _score({500: 1.0, 550: 1.0, 599: 1.0}).raw == pytest.approx(1.0)
    assert _score({550: 1.0, 560: 1.0}).raw == pytest.approx(_score({550: 1.0}).raw)


def test_false_positive_penalties():
    # Before any window: full A_fp = 0.11.
    fp = _score({500: 1.0, 200: 1.0})
    assert fp.raw == pytest.approx(1.0 - 0.11)
    assert fp.normalized == pytest.approx(100 * 1.89 / 2)
    # Just after the window: |599 - 600| / 99 -> -tanh(2.5 / 99) * 0.11 = -0.0027774.
    near = _score({500: 1.0, 600: 1.0})
    assert near.raw == pytest.approx(1.0 - 0.11 * math.tanh(2.5 / 99))
    # Far after the window (position 400 / 99 > 3): full A_fp again.
    assert _score({500: 1.0, 999: 1.0}).raw == pytest.approx(1.0 - 0.11)
    # reward_low_FP_rate doubles the cost.
    assert _score({500: 1.0, 200: 1.0}, "reward_low_FP_rate").raw == pytest.approx(1.0 - 0.22)


def test_probationary_rows_are_not_scored():
    assert _score({500: 1.0, 100: 1.0}).raw == pytest.approx(1.0)


def test_reward_low_fn_profile_doubles_the_miss_cost():
    result = _score({}, "reward_low_FN_rate")
    assert result.raw == pytest.approx(-2.0)
    assert result.normalized == pytest.approx(0.0)
    assert _score({500: 1.0}, "reward_low_FN_rate").normalized == pytest.approx(100.0)


def test_threshold_sweep_picks_the_best_threshold():
    # Candidates: 1.1 -> -1 (miss); 0.95 -> -1 - 0.11; 0.9 -> 1 - 0.11 = 0.89; 0 -> hundreds of FPs.
    result = _score({500: 0.9, 200: 0.95})
    assert result.threshold == 0.9
    assert result.raw == pytest.approx(0.89)
    # An FP scored below the hit is left out by the sweep.
    result = _score({500: 0.9, 200: 0.5})
    assert result.threshold == 0.9
    assert result.raw == pytest.approx(1.0)


def test_threshold_is_chosen_for_the_whole_corpus():
    # File a: hit at 0.8, no FP. File b: hit at 0.3 behind five FPs at 0.4 (0.11 each).
    # Corpus: 1.1 -> -2; 0.8 -> 0; 0.4 -> -0.55; 0.3 -> 2 - 0.55 = 1.45 (best); 0 -> FPs everywhere.
    b_hits = {500: 0.3, **{200 + k: 0.4 for k in range(5)}}
    series = {"a.csv": _series("a.csv", hits={500: 0.8}), "b.csv": _series("b.csv", hits=b_hits)}
    windows = {"a.csv": [WINDOW], "b.csv": [WINDOW]}
    result = score_corpus(series, windows, "standard")
    assert result.threshold == 0.3
    assert result.raw == pytest.approx(1.45)
    per_file = {f.name: f.raw for f in result.files}
    assert per_file == pytest.approx({"a.csv": 1.0, "b.csv": 0.45})
    assert result.normalized == pytest.approx(100 * (1.45 + 2) / 4)
    assert result.subset(["a.csv"])["normalized"] == pytest.approx(100.0)


def test_windows_from_points_follow_nab_labeler():
    ts = T0 + HOUR * np.arange(N, dtype=np.int64)
    # Two anomalies: length int(0.1 * 1000 / 2) = 50, centred (+-25).
    assert windows_from_points(ts, [400, 700]) == [(375, 425), (675, 725)]
    # One anomaly near the start: [110, 210] starts in the probationary period -> dropped.
    assert windows_from_points(ts, [160]) == []
    # Overlapping windows merge.
    assert windows_from_points(ts, [400, 420]) == [(375, 445)]


def test_cli_scores_a_results_directory(tmp_path: Path, capsys):
    results = tmp_path / "results" / "sub"
    results.mkdir(parents=True)
    ts = T0 + HOUR * np.arange(N, dtype=np.int64)
    scores = np.zeros(N)
    scores[500] = 1.0
    lines = ["timestamp,value,anomaly_score,alert"]
    for t, s in zip(ts, scores):
        lines.append(f"{nab_score.format_timestamp(int(t))},1.0,{s},{int(s > 0.5)}")
    (results / "x.csv").write_text("\n".join(lines) + "\n")
    labels = {"sub/x.csv": [[nab_score.format_timestamp(int(ts[500])),
                             nab_score.format_timestamp(int(ts[599]))]]}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    rc = nab_score.main(["--results", str(tmp_path / "results"), "--labels",
                         str(tmp_path / "labels.json"), "--profile", "standard"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "score 100.00" in out
    # Point labels give NAB windows: one anomaly at row 550 -> rows 500..600.
    (tmp_path / "points.json").write_text(
        json.dumps({"sub/x.csv": [nab_score.format_timestamp(int(ts[550]))]}))
    assert nab_score.main(["--results", str(tmp_path / "results"), "--labels",
                           str(tmp_path / "points.json"), "--quiet"]) == 0
    assert "score 100.00" in capsys.readouterr().out
