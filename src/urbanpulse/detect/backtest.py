"""`urbanpulse detect`: run the production DetectorBank over CSV history.

Users tune detectors on history before enabling alerts, so the backtest must score exactly as the
live pipeline does: it feeds the rows, in chunks (bounded memory), to one slot of the same
`DetectorBank` the service uses. Because the bank's results do not depend on how a stream is cut
into batches, the chunk size does not change a single score.

Input: a CSV with a header naming `timestamp` and `value` (other columns are ignored), rows in
time order; timestamps ISO 8601 (a naive time is UTC) or epoch seconds / ms / us / ns (told apart
by magnitude). Output: `timestamp,value,anomaly_score,alert` with the timestamp and value echoed
as given. Rows that cannot be scored (empty or non-numeric value, unreadable timestamp, a
timestamp not after the previous scored one) are kept with anomaly_score 0 and alert 0.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from urbanpulse.detect.bank import DetectorBank
from urbanpulse.detect.report import SeriesReport, label_column, series_name
from urbanpulse.detect.settings import DetectionSettings
from urbanpulse.errors import UrbanpulseError

CHUNK_ROWS = 20_000
OUTPUT_HEADER = ("timestamp", "value", "anomaly_score", "alert")
_BAD_TS = np.iinfo(np.int64).min


class BacktestInputError(UrbanpulseError):
    """An input file or directory is missing, unreadable, or lacks the timestamp/value columns."""


@dataclass
class FileResult:
    """What one backtested file produced."""

    input: Path
    output: Path
    rows: int
    scored: int
    alerts: int


def parse_timestamp(text: str) -> int:
    """Microseconds since epoch (UTC) from ISO 8601 or an epoch number; `_BAD_TS` if unreadable."""
    s = text.strip()
    if not s:
        return _BAD_TS
    try:
        num = float(s)
    except ValueError:
        num = math.nan
    else:
        if not math.isfinite(num):
            return _BAD_TS
        mag = abs(num)
        scale = 1e6 if mag < 1e11 else 1e3 if mag < 1e14 else 1.0 if mag < 1e17 else 1e-3
        return int(round(num * scale))
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return _BAD_TS
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _parse_value(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        return math.nan
    return v if math.isfinite(v) else math.nan


def _chunks(reader: Iterator[list[str]], ts_col: int, val_col: int,
            label_col: int | None = None) -> Iterator[list[tuple[str, str, str]]]:
    chunk: list[tuple[str, str, str]] = []
    for row in reader:
        if not row:
            continue
        ts = row[ts_col] if ts_col < len(row) else ""
        val = row[val_col] if val_col < len(row) else ""
        lab = row[label_col] if label_col is not None and label_col < len(row) else ""
        chunk.append((ts, val, lab))
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def backtest_file(src: Path, dst: Path, metric: str, settings: DetectionSettings, sensor_id: str | None = None,
                  reports: list[SeriesReport] | None = None) -> FileResult:
    """Score one CSV into `dst` with a fresh one-slot DetectorBank; with `reports`, append this
    series' alert budget (and, if the CSV has a label column, its per-detector hits) to it."""
    if not src.is_file():
        raise BacktestInputError(f"input file {src} does not exist (pass a CSV file or a directory of CSVs)")
    bank = DetectorBank(settings)
    bank.assign(np.zeros(1, np.int64), [sensor_id or src.stem], [metric])
    rows = scored = alerts = 0
    try:
        fin = src.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise BacktestInputError(f"cannot read {src}: {exc.strerror}") from exc
    with fin:
        reader = csv.reader(fin)
        header = next(reader, None)
        if header is None:
            raise BacktestInputError(f"{src} is empty: expected a header with the columns timestamp,value")
        names = [h.strip().lower() for h in header]
        missing = [c for c in ("timestamp", "value") if c not in names]
        if missing:
            raise BacktestInputError(f"{src}: no {' or '.join(missing)} column in the header {header!r}; "
                                     "the backtest needs columns named timestamp and value")
        ts_col, val_col = names.index("timestamp"), names.index("value")
        lab_col = label_column(names) if reports is not None else None
        rep_ = SeriesReport(series_name(src, sensor_id), bank.names) if reports is not None else None
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".part")
        with tmp.open("w", newline="", encoding="utf-8") as fout:
            writer = csv.writer(fout, lineterminator="\n")
            writer.writerow(OUTPUT_HEADER)
            for chunk in _chunks(reader, ts_col, val_col, lab_col):
                ts = np.fromiter((parse_timestamp(t) for t, _, _ in chunk), np.int64, len(chunk))
                val = np.fromiter((_parse_value(v) for _, v, _ in chunk), np.float64, len(chunk))
                val[ts == _BAD_TS] = np.nan  # the bank skips non-finite values
                res = bank.score(np.zeros(len(chunk), np.int64), ts, val)
                score = np.zeros(len(chunk), np.float64)
                alert = np.zeros(len(chunk), bool)
                score[res.index] = res.anomaly_score
                alert[res.index] = res.alert
                writer.writerows((t, v, repr(s), int(a)) for (t, v, _), s, a in
                                 zip(chunk, score.tolist(), alert.tolist()))
                if rep_ is not None:
                    lab = None
                    if lab_col is not None:
                        lab = np.fromiter((_parse_value(x) for _, _, x in chunk), np.float64, len(chunk))[res.index]
                    rep_.add(res.ts_us, res.decision, None if lab is None else np.nan_to_num(lab))
                rows += len(chunk)
                scored += len(res)
                alerts += int(alert.sum())
        tmp.replace(dst)
    if rep_ is not None and reports is not None:
        rep_.finish()
        reports.append(rep_)
    return FileResult(src, dst, rows, scored, alerts)


def run_backtest(input_path: Path, output: Path, metric: str, settings: DetectionSettings,
                 progress: bool = True, reports: list[SeriesReport] | None = None) -> list[FileResult]:
    """Backtest a file, or every *.csv below a directory into the same relative paths under `output`.

    In directory mode a file that cannot be read is reported on stderr and skipped; the error is
    raised after the other files are done.
    """
    if input_path.is_dir():
        files = sorted(p for p in input_path.rglob("*.csv") if p.is_file())
        if not files:
            raise BacktestInputError(f"no *.csv files below {input_path}")
        if output.exists() and not output.is_dir():
            raise BacktestInputError(f"--output {output} must be a directory when --input is a directory")
        from tqdm import tqdm

        results, failed = [], []
        for src in tqdm(files, desc="detect", unit="file", disable=not progress, file=sys.stderr):
            rel = src.relative_to(input_path)
            try:
                results.append(backtest_file(src, output / rel, metric, settings,
                                             sensor_id=rel.with_suffix("").as_posix(), reports=reports))
            except BacktestInputError as exc:
                failed.append(str(exc))
                print(f"urbanpulse: skipped: {exc}", file=sys.stderr)
        if failed:
            raise BacktestInputError(f"{len(failed)} of {len(files)} files could not be scored (see above)")
        return results
    if not input_path.exists():
        raise BacktestInputError(f"input {input_path} does not exist (pass a CSV file or a directory of CSVs)")
    if output.is_dir():
        output = output / input_path.name
    return [backtest_file(input_path, output, metric, settings, reports=reports)]
