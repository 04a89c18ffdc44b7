"""`urbanpulse detect`: the backtest CLI on a file and a directory, bad rows, errors, same scores as the bank."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from urbanpulse.detect import DetectionSettings, DetectorBank
from urbanpulse.detect import backtest

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / ".venv/bin/urbanpulse"
if not CLI.exists():  # pragma: no cover - installed elsewhere
    CLI = Path(sys.executable).with_name("urbanpulse")


def _run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), "detect", *map(str, args)], capture_output=True, text=True, timeout=120)


def _series(n: int = 400, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    x = 50 + rng.normal(0, 2, n)
    x[int(0.75 * n)] += 40
    stamps = [str(np.datetime64(1_700_000_000 + 300 * i, "s")) for i in range(n)]  # naive ISO, 5-minute
    return stamps, x


def _write(path: Path, stamps: list[str], values: list[str], header: str = "timestamp,value") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(f"{t},{v}\n" for t, v in zip(stamps, values)))
    return path


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_file_backtest_writes_the_production_banks_scores(tmp_path: Path) -> None:
    stamps, x = _series()
    src = _write(tmp_path / "pm.csv", stamps, [repr(v) for v in x.tolist()])
    out = tmp_path / "pm.scored.csv"
    res = _run("--input", src, "--metric", "pm2_5", "--output", out)
    assert res.returncode == 0, res.stderr
    rows = _read(out)
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "alert"]
    assert [r["timestamp"] for r in rows] == stamps and [r["value"] for r in rows] == [repr(v) for v in x.tolist()]
    bank = DetectorBank(DetectionSettings())
    bank.assign(np.zeros(1, np.int64), ["pm"], ["pm2_5"])
    ts = np.array([backtest.parse_timestamp(s) for s in stamps])
    ref = bank.score(np.zeros(len(x), np.int64), ts, x)
    assert [float(r["anomaly_score"]) for r in rows] == ref.anomaly_score.tolist()  # exact, repr round-trips
    assert [int(r["alert"]) for r in rows] == ref.alert.astype(int).tolist()
    assert int(rows[300]["alert"]) == 1 and float(rows[300]["anomaly_score"]) > 0.5


def test_bad_rows_are_kept_with_score_zero(tmp_path: Path) -> None:
    stamps, x = _series(200)
    values = [repr(v) for v in x.tolist()]
    values[50], values[51], values[52] = "", "n/a", "NaN"
    stamps[60] = "yesterday"
    stamps[70] = stamps[69]  # duplicate timestamp: not scored twice
    src = _write(tmp_path / "in.csv", stamps, values)
    out = tmp_path / "out.csv"
    res = _run("--input", src, "--metric", "pm2_5", "--output", out)
    assert res.returncode == 0, res.stderr
    rows = _read(out)
    assert len(rows) == 200 and rows[51]["value"] == "n/a" and rows[60]["timestamp"] == "yesterday"
    for i in (50, 51, 52, 60, 70):
        assert rows[i]["anomaly_score"] == "0.0" and rows[i]["alert"] == "0"


def test_epoch_timestamps_and_extra_columns(tmp_path: Path) -> None:
    stamps, x = _series(100)
    epoch = [str(1_700_000_000_000 + 60_000 * i) for i in range(100)]  # epoch milliseconds
    src = tmp_path / "e.csv"
    src.write_text("value,label,timestamp\n" + "".join(f"{v},0,{t}\n" for t, v in zip(epoch, x)))
    res = _run("--input", src, "--metric", "no2", "--output", tmp_path / "e.out.csv")
    assert res.returncode == 0, res.stderr
    assert [r["timestamp"] for r in _read(tmp_path / "e.out.csv")] == epoch
    assert backtest.parse_timestamp("1700000000") == backtest.parse_timestamp("2023-11-14T22:13:20Z")
    assert backtest.parse_timestamp("2023-11-14 22:13:20") == backtest.parse_timestamp("2023-11-15T00:13:20+02:00")


def test_directory_backtest_mirrors_the_tree(tmp_path: Path) -> None:
    stamps, x = _series(150)
    for rel in ("a.csv", "sub/b.csv", "sub/deeper/c.csv"):
        _write(tmp_path / "in" / rel, stamps, [repr(v) for v in x.tolist()])
    (tmp_path / "in" / "notes.txt").write_text("not a csv")
    res = _run("--input", tmp_path / "in", "--metric", "pm2_5", "--output", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    outs = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.csv"))
    assert outs == ["a.csv", "sub/b.csv", "sub/deeper/c.csv"]
    assert _read(tmp_path / "out/a.csv") == _read(tmp_path / "out/sub/deeper/c.csv")
    assert "3 file(s)" in res.stdout


def test_config_overrides_apply_per_metric(tmp_path: Path) -> None:
    stamps, x = _series(100)
    src = _write(tmp_path / "in.csv", stamps, [repr(v) for v in x.tolist()])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detection:\n  metrics:\n    pm2_5:\n      threshold: {enabled: true, high: 10}\n")
    res = _run("--input", src, "--metric", "pm2_5", "--config", cfg, "--output", tmp_path / "o.csv")
    assert res.returncode == 0, res.stderr
    assert all(r["alert"] == "1" for r in _read(tmp_path / "o.csv"))  # every value is above 10
    res = _run("--input", src, "--metric", "no2", "--config", cfg, "--output", tmp_path / "o2.csv")
    assert sum(r["alert"] == "1" for r in _read(tmp_path / "o2.csv")) < 5


@pytest.mark.parametrize("case", ["missing_file", "missing_column", "empty", "bad_config"])
def test_bad_input_exits_2_with_a_clear_message(tmp_path: Path, case: str) -> None:
    src = tmp_path / "in.csv"
    args: list[str | Path] = []
    if case == "missing_column":
        src.write_text("time,reading\n2024-01-01T00:00:00,1\n")
    elif case == "empty":
        src.write_text("")
    elif case == "bad_config":
        _write(src, ["2024-01-01T00:00:00"], ["1"])
        cfg = tmp_path / "c.yaml"
        cfg.write_text("detection:\n  defaults:\n    spike: {threshold: -1}\n")
        args = ["--config", cfg]
    res = _run("--input", src, "--metric", "pm2_5", "--output", tmp_path / "o.csv", *args)
    assert res.returncode == 2
    msg = res.stderr.strip().splitlines()[-1]
    assert msg.startswith("urbanpulse: error:")
    expected = {"missing_file": "does not exist", "missing_column": "timestamp and value", "empty": "empty",
                "bad_config": "spike.threshold"}[case]
    assert expected in msg
    assert not (tmp_path / "o.csv").exists()


def test_directory_with_a_bad_file_scores_the_others_then_exits_2(tmp_path: Path) -> None:
    stamps, x = _series(50)
    _write(tmp_path / "in/good.csv", stamps, [repr(v) for v in x.tolist()])
    (tmp_path / "in/bad.csv").write_text("when,what\n1,2\n")
    res = _run("--input", tmp_path / "in", "--metric", "pm2_5", "--output", tmp_path / "out", "--no-progress")
    assert res.returncode == 2 and "bad.csv" in res.stderr
    assert (tmp_path / "out/good.csv").is_file()


def test_help_explains_format_and_bad_rows() -> None:
    res = subprocess.run([str(CLI), "detect", "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    assert "timestamp,value,anomaly_score,alert" in text and "anomaly_score 0 and alert 0" in text
