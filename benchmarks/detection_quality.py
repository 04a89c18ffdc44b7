"""Detection-quality harness: build a labelled corpus, run a detector over it, score it with NAB.

    python benchmarks/detection_quality.py build                  # corpus -> benchmarks/results/corpus/
    python benchmarks/detection_quality.py run [--config FILE]    # urbanpulse detect + NAB scores
    python benchmarks/detection_quality.py baselines              # null / random / zscore / rules
    python benchmarks/detection_quality.py score --results DIR    # score outputs made elsewhere

The issue's target is a standard-profile NAB score of at least 60 with the default detector
settings. `run` reports the three NAB profiles overall (pooled like NAB: one threshold for the
whole corpus) and per sub-corpus (same threshold, totals of that sub-corpus normalised with its
own null and perfect scores). Scores and per-file details go to
`benchmarks/results/detection-quality-<detector>-<time>.json`. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import nab_score  # noqa: E402
from corpus import baselines  # noqa: E402

REPO = HERE.parent
RESULTS = HERE / "results"
CORPUS = RESULTS / "corpus"
LABELS = CORPUS / "labels" / "combined_windows.json"
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def _datasets_root(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    try:
        from urbanpulse.datasets import datasets_root

        return Path(datasets_root())
    except Exception:  # noqa: BLE001 - fall back to the workspace layout
        return REPO.parent / "shared" / "datasets"


def cmd_build(args: argparse.Namespace) -> int:
    from corpus import build_corpus

    manifest = build_corpus(CORPUS, _datasets_root(args.datasets), seed=args.seed)
    print_composition(manifest)
    print(f"\ncorpus written to {CORPUS}")
    return 0


def _manifest() -> dict[str, dict]:
    path = CORPUS / "manifest.json"
    if not path.is_file():
        sys.exit(f"no corpus at {CORPUS}; run `python benchmarks/detection_quality.py build` first")
    return json.loads(path.read_text())


def print_composition(manifest: dict[str, dict]) -> None:
    subs: dict[str, dict] = {}
    for rel, m in manifest.items():
        s = subs.setdefault(rel.split("/")[0], {"files": 0, "rows": [], "anomalies": 0, "kinds": {}})
        s["files"] += 1
        s["rows"].append(m["rows"])
        s["anomalies"] += m["anomalies"]
        for k, c in m["kinds"].items():
            s["kinds"][k] = s["kinds"].get(k, 0) + c
    print(f"{'sub-corpus':18s} {'files':>5s} {'rows':>8s} {'rows/file':>11s} {'windows':>7s}  fault kinds")
    for name in sorted(subs):
        s = subs[name]
        kinds = ", ".join(f"{k} {c}" for k, c in sorted(s["kinds"].items()))
        print(f"{name:18s} {s['files']:5d} {sum(s['rows']):8d} {min(s['rows']):5d}-{max(s['rows']):<5d} "
              f"{s['anomalies']:7d}  {kinds}")
    total_rows = sum(m["rows"] for m in manifest.values())
    print(f"{'total':18s} {len(manifest):5d} {total_rows:8d} {'':11s} {sum(m['anomalies'] for m in manifest.values()):7d}")


def run_baseline(name: str, out: Path, seed: int) -> None:
    """Write baseline detector outputs for every corpus file under `out` (same relative paths)."""
    rng = np.random.default_rng(seed)
    if out.exists():
        shutil.rmtree(out)
    for rel in sorted(_manifest()):
        cols = nab_score.read_csv_columns(CORPUS / "data" / rel, ("timestamp", "value"))
        ts = nab_score.parse_timestamps(cols["timestamp"])
        v = np.asarray(cols["value"], dtype=np.float64)
        score = baselines.detect(name, ts, v, rng)
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as fh:
            fh.write("timestamp,value,anomaly_score,alert\n")
            fh.writelines(f"{t},{x!r},{s:.6f},0\n" for t, x, s in zip(cols["timestamp"], v, score))


def run_urbanpulse(out: Path, metric: str, config: str | None, per_metric: bool) -> None:
    exe = REPO / ".venv" / "bin" / "urbanpulse"
    exe_cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "urbanpulse.cli"]
    if out.exists():
        shutil.rmtree(out)
    extra = ["--config", config] if config else []
    if not per_metric:
        cmd = [*exe_cmd, "detect", "--input", str(CORPUS / "data"), "--metric", metric, *extra,
               "--output", str(out)]
        print("+", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)
        return
    for rel, m in sorted(_manifest().items()):  # each file under its real metric name
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        cmd = [*exe_cmd, "detect", "--input", str(CORPUS / "data" / rel), "--metric", m["metric"], *extra,
               "--output", str(out / rel)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def score(results_dir: Path, detector: str) -> dict:
    """NAB scores (three profiles) overall and per sub-corpus; printed and returned."""
    series, windows = nab_score.load_corpus(results_dir, LABELS)
    subs = sorted({name.split("/")[0] for name in series})
    report: dict = {"detector": detector, "results": str(results_dir), "profiles": {}}
    for profile in PROFILES:
        res = nab_score.score_corpus(series, windows, profile)
        entry = {"threshold": res.threshold, "overall": res.subset(series),
                 "sub_corpora": {s: res.subset(n for n in series if n.startswith(s + "/")) for s in subs},
                 "files": [f.__dict__ | {"normalized": f.normalized} for f in res.files]}
        report["profiles"][profile] = entry
    _print_report(report, subs)
    return report


def _print_report(report: dict, subs: list[str]) -> None:
    p = report["profiles"]
    print(f"\nNAB scores for {report['detector']} (normalised: null 0, perfect 100)")
    print(f"{'':18s} {'standard':>9s} {'low_FP':>9s} {'low_FN':>9s} {'windows':>8s} {'detected':>8s} {'FP rows':>8s}")
    for label, key in [("overall", None)] + [(s, s) for s in subs]:
        rows = [p[pr]["overall"] if key is None else p[pr]["sub_corpora"][key] for pr in PROFILES]
        std = rows[0]
        print(f"{label:18s} " + " ".join(f"{r['normalized']:9.1f}" for r in rows)
              + f" {std['windows']:8d} {std['detected_windows']:8d} {std['fp_rows']:8d}")
    print("thresholds: " + ", ".join(f"{pr} {p[pr]['threshold']:.4g}" for pr in PROFILES))


def _save(report: dict, name: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"detection-quality-{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=1, default=float))
    return path


def cmd_run(args: argparse.Namespace) -> int:
    _manifest()
    out = RESULTS / "detect" / args.detector
    if args.detector == "urbanpulse":
        try:
            run_urbanpulse(out, args.metric, args.config, args.per_metric)
        except (subprocess.CalledProcessError, FileNotFoundError) as err:
            print(f"error: `urbanpulse detect` failed ({err}); is the detect command installed?", file=sys.stderr)
            return 2
    else:
        run_baseline(args.detector, out, args.seed)
    report = score(out, args.detector)
    print(f"report: {_save(report, args.detector)}")
    return 0


def cmd_baselines(args: argparse.Namespace) -> int:
    _manifest()
    summary = {}
    for name in baselines.NAMES:
        out = RESULTS / "detect" / name
        run_baseline(name, out, args.seed)
        summary[name] = score(out, name)
    print(f"report: {_save(summary, 'baselines')}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    report = score(Path(args.results), args.name)
    print(f"report: {_save(report, args.name)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the labelled corpus from the shared datasets")
    b.add_argument("--datasets", help="datasets root (default: $URBANPULSE_DATASETS or ../shared/datasets)")
    b.add_argument("--seed", type=int, default=20240603, help="seed for sampling and fault injection")
    r = sub.add_parser("run", help="run a detector over the corpus and score it")
    r.add_argument("--detector", default="urbanpulse", choices=("urbanpulse", *baselines.NAMES))
    r.add_argument("--config", help="urbanpulse config file passed to `urbanpulse detect`")
    r.add_argument("--metric", default="value", help="metric name given to `urbanpulse detect` (default value)")
    r.add_argument("--per-metric", action="store_true",
                   help="one `urbanpulse detect` per file with the file's real metric name (slower)")
    r.add_argument("--seed", type=int, default=1)
    bl = sub.add_parser("baselines", help="run and score the reference baselines")
    bl.add_argument("--seed", type=int, default=1)
    s = sub.add_parser("score", help="score detector outputs already written under a directory")
    s.add_argument("--results", required=True)
    s.add_argument("--name", default="external")
    args = parser.parse_args(argv)
    return {"build": cmd_build, "run": cmd_run, "baselines": cmd_baselines, "score": cmd_score}[args.cmd](args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
