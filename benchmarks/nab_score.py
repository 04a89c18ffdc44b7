"""Numenta Anomaly Benchmark (NAB v1.1) scoring, re-implemented with numpy.

Why a re-implementation: the issue's detection target ("standard-profile NAB score >= 60") must
be measurable without NAB's Python 2-era code base and pandas. This module follows NAB's own
scoring code line by line in behaviour (numenta/NAB `nab/sweeper.py`, `nab/optimizer.py`,
`nab/scorer.py`, `nab/labeler.py`, `nab/runner.py::normalize`, `config/profiles.json`):

- Windows. Labels are either NAB `combined_windows.json` style (`{path: [[start, end], ...]}`) or
  anomaly points (`{path: [ts, ...]}`, NAB `combined_labels.json` style). Points become windows as
  `LabelCombiner.applyWindows` does: length `int(0.10 * rows / n_anomalies)`, centred
  (`a - length//2 .. a + length//2`, clipped), then `checkWindows`: the first window is dropped
  when it starts inside the probationary period, and overlapping windows are merged.
- Probationary period: `min(floor(0.15 * rows), 0.15 * 5000)` rows at the start of every file
  are not scored at all (`getProbationPeriod`).
- Row scores (`Sweeper.calcSweepScore`): a row inside a window at index i of [s, e] is worth
  `scaledSigmoid(-(e - i + 1) / (e - s + 1)) * A_tp / scaledSigmoid(-1)` if detected, so a
  detection on the first row of a window earns exactly A_tp and later ones less; a detected row
  outside any window costs `scaledSigmoid(|i - e_prev| / (w_prev - 1)) * A_fp` relative to the
  preceding window (rows just after a window cost almost nothing, rows far after it cost A_fp),
  or `-A_fp` when no window precedes it. `scaledSigmoid(x) = 2 / (1 + exp(5x)) - 1`, and -1 for
  x > 3.
- Per window only the best (= earliest) detection counts; an undetected window costs -A_fn.
- Threshold sweep (`Sweeper.calcScoreByThreshold` + `optimizer.optimizeThreshold`): a detection
  is `anomaly_score >= threshold`; every distinct anomaly_score in the corpus (and 1.1, which
  detects nothing) is a candidate and the one with the best *corpus* total wins (ties: the
  higher threshold, as NAB's stable sort does). Each file is then scored at that threshold.
- Profiles (`config/profiles.json`): standard (A_tp 1, A_fp 0.11, A_fn 1), reward_low_FP_rate
  (1, 0.22, 1), reward_low_FN_rate (1, 0.11, 2). True negatives are worth 0 in every profile.
- Normalised score (`Runner.normalize`): `100 * (raw - null) / (perfect - null)` where `null` is
  the total score of NAB's null detector (anomaly_score 0 everywhere, thresholded the same way)
  and `perfect = number of windows * A_tp`.

Deviations, all for robustness and none changing a score on well-formed input:
- Results rows are aligned with labels by timestamp, not by row number; a window limit that is
  not an exact row timestamp snaps to the rows inside it (NAB raises an error instead).
- `perfect` counts the windows that have at least one scorable row (NAB's labeler guarantees
  that all windows do; a labels file that does not would otherwise cap the score below 100).
- A window of width 1 followed by false positives would divide by zero in NAB; here those rows
  are treated as far away (cost A_fp).

Results directory layout: one CSV per labelled file at the same relative path as the labels key,
with at least `timestamp` and `anomaly_score` columns (`urbanpulse detect` writes
`timestamp,value,anomaly_score,alert`).

CLI: `python benchmarks/nab_score.py --results DIR --labels FILE.json [--profile standard]`.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "PROFILES",
    "CostMatrix",
    "FileSeries",
    "CorpusScore",
    "ScoringError",
    "scaled_sigmoid",
    "probation_length",
    "windows_from_points",
    "load_labels",
    "load_results",
    "score_corpus",
    "main",
]

PROBATION_PERCENT = 0.15
WINDOW_SIZE = 0.10
NO_DETECTION_THRESHOLD = 1.1  # NAB's starting threshold: detects nothing (scores are in [0, 1])


class ScoringError(Exception):
    """The results or labels cannot be scored (missing file, bad CSV, unknown timestamps)."""


@dataclass(frozen=True)
class CostMatrix:
    tp: float
    fp: float
    fn: float


PROFILES: dict[str, CostMatrix] = {
    "standard": CostMatrix(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": CostMatrix(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": CostMatrix(tp=1.0, fp=0.11, fn=2.0),
}
PROFILE_ALIASES = {"reward_low_FP": "reward_low_FP_rate", "reward_low_FN": "reward_low_FN_rate"}


def scaled_sigmoid(x: np.ndarray | float) -> np.ndarray:
    """NAB's `scaledSigmoid`: +0.987 at x = -1 (window start), 0 at x = 0, -1 beyond x = 3."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        val = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x > 3.0, -1.0, val)


MAX_TP = float(scaled_sigmoid(-1.0))


def probation_length(n_rows: int, probation_percent: float = PROBATION_PERCENT) -> float:
    """NAB `getProbationPeriod`: rows with index < this value are not scored (at most 750)."""
    return min(math.floor(probation_percent * n_rows), probation_percent * 5000)


# ---------------------------------------------------------------------------------------------
# Timestamps and files


def parse_timestamps(raw: Sequence[str]) -> np.ndarray:
    """Timestamps as int64 microseconds: ISO-8601 strings (space or T, optional Z) or epoch
    numbers (seconds, milliseconds or microseconds, told apart by magnitude)."""
    if len(raw) == 0:
        return np.zeros(0, dtype=np.int64)
    first = raw[0].strip()
    try:
        float(first)
        numeric = True
    except ValueError:
        numeric = False
    if numeric:
        vals = np.asarray([float(r) for r in raw], dtype=np.float64)
        mag = np.nanmax(np.abs(vals)) if vals.size else 0.0
        scale = 1e6 if mag < 1e11 else (1e3 if mag < 1e14 else 1.0)
        return np.round(vals * scale).astype(np.int64)
    cleaned = [r.strip().replace("Z", "").replace("+00:00", "") for r in raw]
    try:
        return np.asarray(cleaned, dtype="datetime64[us]").astype(np.int64)
    except ValueError as err:
        raise ScoringError(f"unparseable timestamp ({err}); use ISO-8601 or epoch numbers") from err


def format_timestamp(ts_us: int) -> str:
    """NAB-style label timestamp (`YYYY-MM-DD HH:MM:SS`, UTC, microseconds when needed)."""
    text = str(np.datetime64(int(ts_us), "us")).replace("T", " ")
    return text[:-7] if text.endswith(".000000") else text


@dataclass
class FileSeries:
    """One detector output file: row timestamps and anomaly scores, in time order."""

    name: str
    ts_us: np.ndarray
    anomaly_score: np.ndarray


def read_csv_columns(path: Path, columns: Iterable[str]) -> dict[str, list[str]]:
    """Read the named columns of a headed CSV as strings (stdlib csv, no pandas)."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ScoringError(f"{path} is empty") from None
        wanted = list(columns)
        missing = [c for c in wanted if c not in header]
        if missing:
            raise ScoringError(f"{path} lacks column(s) {missing}; header is {header}")
        idx = [header.index(c) for c in wanted]
        out: dict[str, list[str]] = {c: [] for c in wanted}
        for row in reader:
            if not row:
                continue
            for c, i in zip(wanted, idx):
                out[c].append(row[i])
    return out


def load_results(path: Path, name: str | None = None) -> FileSeries:
    """A detector output CSV (`timestamp,...,anomaly_score,...`) as a FileSeries.

    Empty or non-numeric scores count as 0 (no detection); rows are sorted by time."""
    cols = read_csv_columns(path, ("timestamp", "anomaly_score"))
    ts = parse_timestamps(cols["timestamp"])
    score = np.asarray(
        [float(s) if s.strip() not in ("", "nan", "NaN") else 0.0 for s in cols["anomaly_score"]],
        dtype=np.float64,
    )
    order = np.argsort(ts, kind="stable")
    return FileSeries(name or str(path), ts[order], score[order])


# ---------------------------------------------------------------------------------------------
# Labels -> windows


def windows_from_points(
    ts_us: np.ndarray,
    anomaly_idx: Sequence[int],
    window_size: float = WINDOW_SIZE,
    probation_percent: float = PROBATION_PERCENT,
) -> list[tuple[int, int]]:
    """NAB `applyWindows` + `checkWindows` for one file: window row-index limits [start, end].

    Window length `int(window_size * rows / n_anomalies)`, centred on each anomaly; the first
    window is dropped if it starts inside the probationary period; overlapping windows merge.
    """
    n = len(ts_us)
    anomalies = sorted(int(a) for a in anomaly_idx)
    if not anomalies:
        return []
    length = int(window_size * n / len(anomalies))
    half = length // 2  # Python 2 integer division in NAB
    windows = [[max(a - half, 0), min(a + half, n - 1)] for a in anomalies]
    probation_idx = int(probation_length(n, probation_percent))
    if windows and windows[0][0] < probation_idx:
        del windows[0]
    i = 0
    while i < len(windows) - 1:
        if windows[i + 1][0] <= windows[i][1]:
            windows[i] = [windows[i][0], windows[i + 1][1]]
            del windows[i + 1]
        else:
            i += 1
    return [(s, e) for s, e in windows]


def load_labels(path: Path) -> dict[str, list]:
    """Labels JSON: `{relative_path: [[start, end], ...]}` or `{relative_path: [ts, ...]}`."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ScoringError(f"cannot read labels {path}: {err}") from err
    if not isinstance(data, dict):
        raise ScoringError(f"{path}: expected a JSON object {{relative_path: [...]}}")
    return data


def window_indices(series: FileSeries, labels: list) -> list[tuple[int, int]]:
    """Row-index windows of one file from its label entry (windows or points)."""
    ts = series.ts_us
    if not labels:
        return []
    if all(isinstance(x, (list, tuple)) and len(x) == 2 for x in labels):
        limits = parse_timestamps([str(x[0]) for x in labels]), parse_timestamps(
            [str(x[1]) for x in labels]
        )
        out = []
        for t1, t2 in sorted(zip(limits[0].tolist(), limits[1].tolist())):
            s = int(np.searchsorted(ts, t1, side="left"))
            e = int(np.searchsorted(ts, t2, side="right")) - 1
            if s <= e:
                out.append((s, e))
        return out
    points = parse_timestamps([str(x) for x in labels])
    idx = np.searchsorted(ts, points, side="left")
    ok = (idx < len(ts)) & (ts[np.minimum(idx, len(ts) - 1)] == points)
    if not ok.all():
        bad = [format_timestamp(p) for p in points[~ok]][:3]
        raise ScoringError(f"{series.name}: label timestamp(s) {bad} are not rows of the file")
    return windows_from_points(ts, idx.tolist())


# ---------------------------------------------------------------------------------------------
# Sweep


@dataclass
class _Sweep:
    """Per-row NAB sweep scores of one file (the output of `calcSweepScore`)."""

    name: str
    anomaly_score: np.ndarray  # float64 [n]
    sweep: np.ndarray  # float64 [n], the weighted row score if the row were detected
    window: np.ndarray  # int64 [n]: window number, -1 outside, -2 probationary
    n_windows: int  # windows with at least one scorable row


def _sweep_file(series: FileSeries, windows: list[tuple[int, int]], cost: CostMatrix) -> _Sweep:
    n = len(series.ts_us)
    i = np.arange(n)
    sweep = np.empty(n, dtype=np.float64)
    window = np.full(n, -1, dtype=np.int64)
    # Outside windows: relative to the preceding window's right edge (or far away).
    prev_right = np.full(n, -1, dtype=np.int64)
    prev_width = np.zeros(n, dtype=np.float64)
    for k, (s, e) in enumerate(windows):
        width = float(e - s + 1)
        rows = slice(s, e + 1)
        sweep[rows] = scaled_sigmoid(-(e - i[rows] + 1) / width) * cost.tp / MAX_TP
        window[rows] = k
        prev_right[e + 1 :] = e
        prev_width[e + 1 :] = width
    outside = window == -1
    has_prev = outside & (prev_right >= 0) & (prev_width > 1)
    unweighted = np.full(n, -1.0)
    if has_prev.any():
        pos = np.abs(prev_right[has_prev] - i[has_prev]) / (prev_width[has_prev] - 1.0)
        unweighted[has_prev] = scaled_sigmoid(pos)
    sweep[outside] = unweighted[outside] * cost.fp
    window[i < probation_length(n)] = -2
    n_scorable = len(np.unique(window[window >= 0]))
    return _Sweep(series.name, series.anomaly_score, sweep, window, n_scorable)


@dataclass
class _ThresholdTable:
    """Score (and counts) of a set of files at every candidate threshold, best first by NAB rule."""

    thresholds: np.ndarray  # descending; thresholds[0] = 1.1
    score: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray

    def best(self) -> int:
        return int(np.argmax(self.score))  # first maximum = highest threshold, like NAB


def _threshold_table(sweeps: Sequence[_Sweep], cost: CostMatrix) -> _ThresholdTable:
    """NAB `calcScoreByThreshold` over the concatenation of files, vectorised.

    Rows are visited by descending anomaly score; at each distinct score the running total is
    recorded: the sum of detected false-positive row scores plus, per window, the best detected
    row score (or -A_fn while none is detected)."""
    scores, sweep, win = [], [], []
    offset = 0
    for sw in sweeps:
        keep = sw.window != -2
        scores.append(sw.anomaly_score[keep])
        sweep.append(sw.sweep[keep])
        w = sw.window[keep]
        win.append(np.where(w >= 0, w + offset, -1))
        offset += int(sw.window.max(initial=-1)) + 1
    a = np.concatenate(scores) if scores else np.zeros(0)
    s = np.concatenate(sweep) if sweep else np.zeros(0)
    w = np.concatenate(win) if win else np.zeros(0, dtype=np.int64)
    order = np.argsort(-a, kind="stable")
    a, s, w = a[order], s[order], w[order]
    in_win = w >= 0
    n_windows = len(np.unique(w[in_win]))

    # Window part: each window's running max of detected row scores, as increments in sweep order.
    delta = np.zeros(len(a))
    if in_win.any():
        pos = np.nonzero(in_win)[0]
        wins = w[pos]
        by_win = np.lexsort((pos, wins))
        pos, wins = pos[by_win], wins[by_win]
        starts = np.r_[0, np.nonzero(np.diff(wins))[0] + 1]
        for k, st in enumerate(starts):
            en = starts[k + 1] if k + 1 < len(starts) else len(pos)
            vals = np.maximum.accumulate(np.r_[-cost.fn, s[pos[st:en]]])
            delta[pos[st:en]] = np.diff(vals)
    delta[~in_win] = s[~in_win]
    running = -cost.fn * n_windows + np.cumsum(delta)
    tp_run = np.cumsum(in_win)
    fp_run = np.cumsum(~in_win)

    # Record after the last row of each group of equal scores (and 1.1 = nothing detected).
    if len(a):
        ends = np.r_[np.nonzero(np.diff(a))[0], len(a) - 1]
        thresholds = np.r_[NO_DETECTION_THRESHOLD, a[ends]]
        score = np.r_[-cost.fn * n_windows, running[ends]]
        tp = np.r_[0, tp_run[ends]]
        fp = np.r_[0, fp_run[ends]]
    else:
        thresholds = np.array([NO_DETECTION_THRESHOLD])
        score = np.array([-cost.fn * n_windows])
        tp = fp = np.array([0])
    total_in, total_out = int(in_win.sum()), int((~in_win).sum())
    return _ThresholdTable(thresholds, score, tp, fp, total_in - tp, total_out - fp)


# ---------------------------------------------------------------------------------------------
# Corpus scoring


@dataclass
class FileScore:
    name: str
    raw: float
    null: float
    perfect: float
    tp: int
    fp: int
    fn: int
    tn: int
    windows: int
    detected_windows: int

    @property
    def normalized(self) -> float:
        return _normalize(self.raw, self.null, self.perfect)


@dataclass
class CorpusScore:
    """One detector on one corpus under one profile, at the corpus-wide best threshold."""

    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    files: list[FileScore] = field(default_factory=list)

    @property
    def normalized(self) -> float:
        return _normalize(self.raw, self.null, self.perfect)

    def subset(self, names: Iterable[str]) -> dict[str, float]:
        """Raw/null/perfect/normalised totals of some files (same threshold)."""
        chosen = set(names)
        fs = [f for f in self.files if f.name in chosen]
        raw, null, perfect = (sum(getattr(f, a) for f in fs) for a in ("raw", "null", "perfect"))
        return {
            "files": len(fs),
            "windows": sum(f.windows for f in fs),
            "detected_windows": sum(f.detected_windows for f in fs),
            "fp_rows": sum(f.fp for f in fs),
            "raw": raw,
            "null": null,
            "perfect": perfect,
            "normalized": _normalize(raw, null, perfect),
        }


def _normalize(raw: float, null: float, perfect: float) -> float:
    if perfect == null:
        return float("nan")
    return 100.0 * (raw - null) / (perfect - null)


def _file_at(sweep: _Sweep, cost: CostMatrix, threshold: float) -> tuple[float, int, int, int, int, int]:
    """Score of one file with detections `anomaly_score >= threshold` (NAB `scoreDataSet`)."""
    keep = sweep.window != -2
    det = (sweep.anomaly_score >= threshold) & keep
    in_win = (sweep.window >= 0) & keep
    total = float(sweep.sweep[det & ~in_win].sum())
    detected = 0
    for k in np.unique(sweep.window[in_win]):
        rows = det & (sweep.window == k)
        if rows.any():
            total += max(-cost.fn, float(sweep.sweep[rows].max()))
            detected += 1
        else:
            total -= cost.fn
    tp = int((det & in_win).sum())
    fp = int((det & ~in_win).sum())
    return total, tp, fp, int(in_win.sum()) - tp, int((keep & ~in_win).sum()) - fp, detected


def score_corpus(
    series: Mapping[str, FileSeries],
    windows: Mapping[str, list[tuple[int, int]]],
    profile: str = "standard",
    threshold: float | None = None,
) -> CorpusScore:
    """Score a detector's outputs under one profile: best corpus threshold, then per file.

    `windows[name]` are row-index windows of `series[name]` (see `window_indices`). A given
    `threshold` is used as it is instead of the best one (scoring held-out data at a threshold
    chosen on other data)."""
    cost = PROFILES[PROFILE_ALIASES.get(profile, profile)]
    names = sorted(series)
    sweeps = [_sweep_file(series[n], windows.get(n, []), cost) for n in names]
    if threshold is None:
        table = _threshold_table(sweeps, cost)
        threshold = float(table.thresholds[table.best()])

    # NAB's null detector: anomaly_score 0 everywhere, scored the same way (its own best threshold).
    null_sweeps = [
        _Sweep(sw.name, np.zeros_like(sw.anomaly_score), sw.sweep, sw.window, sw.n_windows)
        for sw in sweeps
    ]
    null_table = _threshold_table(null_sweeps, cost)
    null_threshold = float(null_table.thresholds[null_table.best()])

    files = []
    for sw, nsw in zip(sweeps, null_sweeps):
        raw, tp, fp, fn, tn, detected = _file_at(sw, cost, threshold)
        null, *_ = _file_at(nsw, cost, null_threshold)
        files.append(
            FileScore(sw.name, raw, null, sw.n_windows * cost.tp, tp, fp, fn, tn, sw.n_windows, detected)
        )
    return CorpusScore(
        profile=profile,
        threshold=threshold,
        raw=sum(f.raw for f in files),
        null=sum(f.null for f in files),
        perfect=sum(f.perfect for f in files),
        files=files,
    )


def load_corpus(results_dir: Path, labels_path: Path) -> tuple[dict[str, FileSeries], dict[str, list[tuple[int, int]]]]:
    """Read every labelled file's detector output under `results_dir` and its windows."""
    labels = load_labels(labels_path)
    series, windows = {}, {}
    missing = []
    for name in sorted(labels):
        path = Path(results_dir) / name
        if not path.is_file():
            missing.append(name)
            continue
        s = load_results(path, name)
        series[name] = s
        windows[name] = window_indices(s, labels[name])
    if missing:
        raise ScoringError(
            f"{len(missing)} labelled file(s) have no results under {results_dir}, e.g. "
            f"{missing[:3]}; run the detector over the whole corpus first"
        )
    return series, windows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Score anomaly-detector outputs with the Numenta Anomaly Benchmark (v1.1) rules."
    )
    parser.add_argument("--results", required=True, type=Path,
                        help="directory of detector outputs (timestamp,...,anomaly_score CSVs) at the labels' relative paths")
    parser.add_argument("--labels", required=True, type=Path,
                        help="labels JSON: {relative_path: [[start, end], ...]} windows or {relative_path: [ts, ...]} points")
    parser.add_argument("--profile", default="all",
                        help="standard, reward_low_FP_rate, reward_low_FN_rate or all (default)")
    parser.add_argument("--quiet", action="store_true", help="totals only, no per-file lines")
    args = parser.parse_args(argv)
    profiles = list(PROFILES) if args.profile == "all" else [PROFILE_ALIASES.get(args.profile, args.profile)]
    unknown = [p for p in profiles if p not in PROFILES]
    if unknown:
        parser.error(f"unknown profile {unknown[0]!r}; choose from {', '.join(PROFILES)} or all")
    try:
        series, windows = load_corpus(args.results, args.labels)
    except ScoringError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for profile in profiles:
        result = score_corpus(series, windows, profile)
        print(f"== profile {profile}: threshold {result.threshold:.6g}")
        if not args.quiet:
            print(f"{'file':60s} {'raw':>9s} {'norm':>7s} {'win':>4s} {'det':>4s} {'fp_rows':>7s}")
            for f in result.files:
                print(f"{f.name:60s} {f.raw:9.3f} {f.normalized:7.1f} {f.windows:4d} {f.detected_windows:4d} {f.fp:7d}")
        print(f"TOTAL raw {result.raw:.3f}  null {result.null:.3f}  perfect {result.perfect:.3f}  "
              f"score {result.normalized:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
