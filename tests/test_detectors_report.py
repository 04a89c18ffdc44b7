"""`urbanpulse detect --report`: alert onsets per series per day by detector, precision and recall
per detector on a labelled CSV."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from urbanpulse.detect import DetectionSettings
from urbanpulse.detect.backtest import backtest_file
from urbanpulse.detect.report import SeriesReport, format_report

CLI = Path(sys.executable).with_name("urbanpulse")


def _labelled_csv(path: Path, n: int = 2000, seed: int = 3) -> tuple[list[int], list[int]]:
    """5-minute noise with two spikes labelled, one unlabelled spike (a false alarm), one labelled
    event no detector can see (a tiny bump): spike recall 2/3, precision 2/3."""
    rng = np.random.default_rng(seed)
    x = 50 + rng.normal(0, 1, n)
    label = np.zeros(n, int)
    for i in (800, 1400):
        x[i] += 40
        label[i:i + 5] = 1
    x[1100] += 40  # not labelled
    label[1700:1710] = 1  # labelled, invisible
    x[1700:1710] += 0.1
    ts = [str(np.datetime64(1_700_000_000 + 300 * i, "s")) for i in range(n)]
    path.write_text("timestamp,value,label\n" + "".join(f"{t},{v!r},{k}\n" for t, v, k in zip(ts, x.tolist(), label)))
    return [800, 1400, 1100], [800, 1400, 1700]


def test_report_counts_onsets_per_day_and_precision_recall_per_detector(tmp_path: Path) -> None:
    src = tmp_path / "pm.csv"
    _labelled_csv(src)
    reports: list[SeriesReport] = []
    backtest_file(src, tmp_path / "out.csv", "pm2_5", DetectionSettings(), reports=reports)
    (r,) = reports
    assert r.labelled and r.events == 3
    assert abs(r.days - 1999 * 300 / 86400) < 1e-9
    sp = r.names.index("spike")
    assert r.onsets[sp] == 3 and r.hits[sp] == 2 and r.found[sp] == 2
    assert (r.onsets >= r.hits).all() and (r.found <= r.events).all()
    text = format_report(reports)
    assert "alerts per series per day" in text and "precision" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("spike "))
    assert line.split()[1:] == ["3", "0.67", "0.67"]


def test_report_across_chunks_counts_a_run_once(tmp_path: Path, monkeypatch) -> None:
    """A decision run split by the chunking is one onset."""
    from urbanpulse.detect import backtest

    src = tmp_path / "pm.csv"
    _labelled_csv(src)
    whole: list[SeriesReport] = []
    backtest_file(src, tmp_path / "a.csv", "pm2_5", DetectionSettings(), reports=whole)
    monkeypatch.setattr(backtest, "CHUNK_ROWS", 7)
    cut: list[SeriesReport] = []
    backtest_file(src, tmp_path / "b.csv", "pm2_5", DetectionSettings(), reports=cut)
    assert whole[0].onsets.tolist() == cut[0].onsets.tolist() and whole[0].found.tolist() == cut[0].found.tolist()
    assert whole[0].hits.tolist() == cut[0].hits.tolist()


def test_cli_report_prints_the_budget(tmp_path: Path) -> None:
    src = tmp_path / "pm.csv"
    _labelled_csv(src)
    res = subprocess.run([str(CLI), "detect", "--input", str(src), "--metric", "pm2_5", "--output",
                          str(tmp_path / "o.csv"), "--report"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "alerts per series per day" in res.stdout and "recall" in res.stdout
    assert "pm " in res.stdout or "pm\n" in res.stdout
