"""Development report for detection: per dataset, worst dataset, leave-one-dataset-out, baselines.

    python benchmarks/detection_dev.py                 # urbanpulse defaults + baselines + LODO
    python benchmarks/detection_dev.py --no-hst        # skip River's HalfSpaceTrees (slow, needs `river`)
    python benchmarks/detection_dev.py --json out.json

The development set is benchmarks/detection_devset.py (existing corpus + GECCO 2018 + Petrobras
3W + synthetic families). Every file is a slot of one in-process `DetectorBank` (the same scores
as `urbanpulse detect`: the bank's output does not depend on how the stream is cut into batches).

Scoring is NAB's (benchmarks/nab_score.py). Per dataset: the pooled best threshold over the whole
set, that dataset's own null and perfect totals. Leave-one-dataset-out (LODO): for each dataset D,
the candidate settings (`CANDIDATES`) and the threshold are chosen on all other datasets, then D
is scored at that choice; the figure is the mean over datasets (and the worst). Baselines get the
same treatment (their only choice is the threshold):
- zscore: windowed Gaussian (|z| against the previous 500 readings; benchmarks/corpus/baselines.py);
- hst: River's HalfSpaceTrees (PyPI `river`), the usual streaming baseline, set up as River
  documents it: the reading and its first difference, min-max scaled, River's default trees;
  its score calibrated per stream (conformal rank, River's per-stream quantile thresholding in
  continuous form) so that one threshold means the same on every file (benchmarks/corpus/hst.py,
  computed in a separate venv and cached).

GECCO and 3W label a station (segment / well instance), not a channel: the report also scores them
per station (`detection_devset.stations`: at each time the largest anomaly_score of the station's
channels, Sidak-corrected for their number (`combine_station`; uncorrected "max" beside it), same
onsets and windows), per dataset and LODO, beside the per-channel figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import detection_devset as devset  # noqa: E402
import nab_score  # noqa: E402
from corpus import baselines  # noqa: E402

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")

# Candidate settings for LODO: patches of the `detection:` section (defaults first).
CANDIDATES: dict[str, dict] = {
    "defaults": {},
    "spike16": {"defaults": {"spike": {"threshold": 16.0}}},
    "silence5": {"defaults": {"silence": {"factor": 5.0}}},
    "no_flatline": {"defaults": {"flatline": {"enabled": False}}},
    "rz12": {"defaults": {"robust_z": {"threshold": 12.0}, "ewma": {"threshold": 12.0}}},
    "li3": {"fusion": {"likelihood_threshold": 3.0}},
    "ew_floor1": {"defaults": {"ewma": {"spread_floor": 1.0}}},
    "sp_floor1": {"defaults": {"spike": {"spread_floor": 1.0}}},
    "silence5_ew_floor1": {"defaults": {"silence": {"factor": 5.0}, "ewma": {"spread_floor": 1.0}}},
    "ewma16": {"defaults": {"ewma": {"threshold": 16.0}}},
    "bump06": {"fusion": {"rearm_bump": 0.6}},
    "irr1": {"defaults": {"silence": {"irregularity": 1.0}}},
    "irr1_sp_floor1": {"defaults": {"silence": {"irregularity": 1.0}, "spike": {"spread_floor": 1.0}}},
    "li_w07": {"fusion": {"likelihood_weight": 0.7}},
    "halflife600": {"fusion": {"rearm_half_life": 600.0}},
    "halflife150": {"fusion": {"rearm_half_life": 150.0}},
    "halflife150_sp_floor1": {"fusion": {"rearm_half_life": 150.0}, "defaults": {"spike": {"spread_floor": 1.0}}},
    "halflife150_ew_floor1": {"fusion": {"rearm_half_life": 150.0}, "defaults": {"ewma": {"spread_floor": 1.0}}},
    # the calibrated score (issue 11 item 3): its tail fit, and the re-arm memory again
    "halflife100": {"fusion": {"rearm_half_life": 100.0}},
    "halflife100_bump02": {"fusion": {"rearm_half_life": 100.0, "rearm_bump": 0.2}},
    "halflife50": {"fusion": {"rearm_half_life": 50.0}},
    "tail_memory2000": {"fusion": {"tail_memory": 2000.0}},
    "tail_excess2": {"fusion": {"tail_prior_excess": 2.0}},
    "tail_level015": {"fusion": {"tail_level": 0.15}},
}


def _settings(patch: dict):
    from urbanpulse.detect import DetectionSettings

    data = DetectionSettings().model_dump()
    for section, fields in patch.items():
        if section == "defaults":
            for det, params in fields.items():
                data["defaults"][det].update(params)
        else:
            data[section].update(fields)
    return DetectionSettings.model_validate(data)


def score_files(files: list[devset.DevFile], patch: dict):
    """Score every file as one slot of one DetectorBank (the development set's one way of running the detectors).

    Returns the bank's Scores, the files' row offsets into the concatenated rows (file k is rows
    offs[k]:offs[k + 1]) and the readings per second of the scoring call."""
    from urbanpulse.detect import DetectorBank

    bank = DetectorBank(_settings(patch))
    n = len(files)
    bank.assign(np.arange(n), [f.name for f in files], ["value"] * n)
    sl = np.concatenate([np.full(len(f.values), k, np.int64) for k, f in enumerate(files)])
    ts = np.concatenate([f.ts_us for f in files])
    v = np.concatenate([f.values for f in files])
    t0 = time.perf_counter()
    sc = bank.score(sl, ts, v)
    rate = len(v) / (time.perf_counter() - t0)
    return sc, np.cumsum([0] + [len(f.values) for f in files]), rate


def run_urbanpulse(files: list[devset.DevFile], patch: dict) -> tuple[dict[str, np.ndarray], float]:
    """anomaly_score per file from one DetectorBank (all files as slots); and readings/s."""
    sc, offs, rate = score_files(files, patch)
    full = np.zeros(int(offs[-1]))
    full[sc.index] = sc.anomaly_score
    return {f.name: full[offs[k]:offs[k + 1]] for k, f in enumerate(files)}, rate


def run_zscore(files: list[devset.DevFile]) -> dict[str, np.ndarray]:
    return {f.name: baselines._to_unit(baselines.abs_z(np.nan_to_num(f.values))) for f in files}


def run_hst(files: list[devset.DevFile]) -> dict[str, np.ndarray]:
    """River HalfSpaceTrees per file as `corpus/hst.py` computes it, read from its cache.

    River needs scipy/pandas builds that pin an older numpy than the project's, so the scores
    are normally computed in a venv of their own (see corpus/hst.py); a cache made with other
    settings (`hst.config_tag()` differs, e.g. the value-only, uncalibrated setup before) or for
    another development set is not used."""
    from corpus import hst

    cache = hst.CACHE
    if cache.is_file():
        got = dict(np.load(cache))
        if str(got.get("__config__", "")) == hst.config_tag() and \
                all(f.name in got and len(got[f.name]) == len(f.values) for f in files):
            return {f.name: got[f.name] for f in files}
    try:
        import river  # noqa: F401
    except ImportError:
        raise SystemExit(f"no current HalfSpaceTrees cache at {cache} and no `river` here: run\n"
                         "  python3 -m venv /tmp/detect-river-venv && /tmp/detect-river-venv/bin/pip install river numpy\n"
                         "  /tmp/detect-river-venv/bin/python benchmarks/corpus/hst.py\n"
                         "(after detection_devset.py has cached the set), or pass --no-hst") from None
    out = {f.name: hst.conformal(hst.score_file(f.values)) for f in files}
    np.savez_compressed(cache, __config__=np.array(hst.config_tag()), **out)
    return out


def _series(files, scores):
    ser = {f.name: nab_score.FileSeries(f.name, f.ts_us, scores[f.name]) for f in files}
    win = {f.name: f.windows for f in files}
    return ser, win


def per_dataset(files, scores, profile="standard") -> dict:
    """Pooled threshold over all files; normalised score per dataset, the worst, overall."""
    ser, win = _series(files, scores)
    res = nab_score.score_corpus(ser, win, profile)
    out = {"threshold": res.threshold, "overall": res.subset(ser)}
    for ds in devset.DATASETS:
        out[ds] = res.subset(f.name for f in files if f.dataset == ds)
    out["worst"] = min(out[ds]["normalized"] for ds in devset.DATASETS)
    return out


def lodo(files, runs: dict[str, dict[str, np.ndarray]], profile="standard") -> dict:
    """Leave-one-dataset-out: choose candidate + threshold without D, score D at that choice."""
    out = {}
    for ds in devset.DATASETS:
        train = [f for f in files if f.dataset != ds]
        test = [f for f in files if f.dataset == ds]
        best = None
        for name, scores in runs.items():
            ser, win = _series(train, scores)
            r = nab_score.score_corpus(ser, win, profile)
            if best is None or r.normalized > best[1]:
                best = (name, r.normalized, r.threshold)
        ser, win = _series(test, runs[best[0]])
        r = nab_score.score_corpus(ser, win, profile, threshold=best[2])
        out[ds] = {"chosen": best[0], "threshold": best[2], "train": best[1], "held_out": r.normalized}
    vals = [out[ds]["held_out"] for ds in devset.DATASETS]
    out["mean"] = float(np.mean(vals))
    out["worst"] = float(np.min(vals))
    return out


def clean_false_alerts() -> dict:
    """Alert onsets (rising edges of any detector's decision) per 10,000 readings on SKAB's
    anomaly-free run, every sensor channel, at the defaults."""
    import csv
    import gzip

    from urbanpulse.detect import DetectionSettings, DetectorBank

    path = devset._datasets_root() / "skab" / "anomaly-free" / "anomaly-free.csv.gz"
    with gzip.open(path, "rt") as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    header, body = rows[0], rows[1:]
    ts = np.asarray([r[0] for r in body], dtype="datetime64[us]").astype(np.int64)
    bank = DetectorBank(DetectionSettings())
    cols = header[1:]
    bank.assign(np.arange(len(cols)), [f"skab-free-{c}" for c in cols], [c for c in cols])
    sl = np.concatenate([np.full(len(ts), k, np.int64) for k in range(len(cols))])
    v = np.concatenate([np.asarray([float(r[k + 1]) for r in body]) for k in range(len(cols))])
    sc = bank.score(sl, np.tile(ts, len(cols)), v)
    dec = sc.decision
    prev = np.zeros_like(dec)
    prev[1:] = dec[:-1]
    prev[np.r_[True, sc.slot[1:] != sc.slot[:-1]]] = False
    onsets = dec & ~prev
    per = {n: float(onsets[:, j].sum() * 1e4 / len(sc)) for j, n in enumerate(sc.names)}
    per["any"] = float((onsets.any(axis=1)).sum() * 1e4 / len(sc))
    per["readings"] = len(sc)
    return per


def _fmt(rep: dict) -> str:
    return " ".join(f"{rep[ds]['normalized']:6.1f}" for ds in devset.DATASETS)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-hst", action="store_true", help="skip River's HalfSpaceTrees baseline")
    ap.add_argument("--no-lodo", action="store_true", help="defaults only (no candidate runs)")
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--refresh", action="store_true", help="rebuild the cached development set")
    args = ap.parse_args(argv)
    files = devset.load(args.refresh)
    print(devset.composition(files))
    runs, rates = {}, {}
    for name, patch in (CANDIDATES.items() if not args.no_lodo else [("defaults", {})]):
        try:
            runs[name], rates[name] = run_urbanpulse(files, patch)
        except ValueError as exc:  # a candidate naming a setting this tree does not have (an older commit)
            print(f"candidate {name} skipped: {str(exc).splitlines()[0]}")
    base = {"zscore": run_zscore(files)}
    if not args.no_hst:
        base["hst"] = run_hst(files)
    report: dict = {"datasets": devset.DATASETS, "urbanpulse": {}, "baselines": {}, "lodo": {}}
    print(f"\nNAB normalised, pooled threshold; columns: {' '.join(f'{d:>6s}' for d in devset.DATASETS)}")
    for profile in PROFILES:
        r = per_dataset(files, runs["defaults"], profile)
        report["urbanpulse"][profile] = r
        print(f"urbanpulse {profile:19s} overall {r['overall']['normalized']:6.1f} worst {r['worst']:6.1f} | {_fmt(r)}")
    for bname, sc in base.items():
        r = per_dataset(files, sc)
        report["baselines"][bname] = r
        print(f"{bname:10s} {'standard':19s} overall {r['overall']['normalized']:6.1f} worst {r['worst']:6.1f} | {_fmt(r)}")
    for name in runs:
        if name != "defaults":
            r = per_dataset(files, runs[name])
            print(f"  candidate {name:12s} overall {r['overall']['normalized']:6.1f} worst {r['worst']:6.1f} | {_fmt(r)}")
    print("\nleave-one-dataset-out (standard): held-out score per dataset, chosen candidate")
    for label, rr in [("urbanpulse", runs)] + [(b, {b: s}) for b, s in base.items()]:
        lo = lodo(files, rr)
        report["lodo"][label] = lo
        cells = " ".join(f"{lo[ds]['held_out']:6.1f}" for ds in devset.DATASETS)
        print(f"{label:10s} mean {lo['mean']:6.1f} worst {lo['worst']:6.1f} | {cells}  "
              + ",".join(lo[ds]["chosen"] for ds in devset.DATASETS) if label == "urbanpulse" else
              f"{label:10s} mean {lo['mean']:6.1f} worst {lo['worst']:6.1f} | {cells}")
    # gecco and 3w per station (devset.stations): their labels are per station. "sidak": the largest channel
    # score corrected for the station's number of channels (the reference); "max": uncorrected (as before)
    report["station"] = {}
    for combine in ("sidak", "max"):
        sfiles, _ = devset.stations(files, runs["defaults"], combine)
        sruns = {name: devset.stations(files, sc, combine)[1] for name, sc in runs.items()}
        sbase = {b: devset.stations(files, sc, combine)[1] for b, sc in base.items()}
        rep = report["station"][combine] = {"urbanpulse": per_dataset(sfiles, sruns["defaults"]),
                                            "baselines": {}, "lodo": {}}
        print(f"\ngecco and 3w scored per station, combine={combine} (devset.combine_station):")
        if combine == "sidak":
            print(devset.composition(sfiles))
        r = rep["urbanpulse"]
        print(f"urbanpulse {'standard':19s} overall {r['overall']['normalized']:6.1f} worst {r['worst']:6.1f} | {_fmt(r)}")
        for bname, sc in sbase.items():
            r = per_dataset(sfiles, sc)
            rep["baselines"][bname] = r
            print(f"{bname:10s} {'standard':19s} overall {r['overall']['normalized']:6.1f} worst {r['worst']:6.1f} | {_fmt(r)}")
        for label, rr in [("urbanpulse", sruns), ("urbanpulse_defaults", {"defaults": sruns["defaults"]})] + [
                (b, {b: s}) for b, s in sbase.items()]:
            lo = lodo(sfiles, rr)
            rep["lodo"][label] = lo
            cells = " ".join(f"{lo[ds]['held_out']:6.1f}" for ds in devset.DATASETS)
            print(f"LODO {label:19s} mean {lo['mean']:6.1f} worst {lo['worst']:6.1f} | {cells}")
    lo = lodo(files, {"defaults": runs["defaults"]})
    report["lodo"]["urbanpulse_defaults"] = lo
    print(f"\nper channel, LODO defaults only: mean {lo['mean']:6.1f} worst {lo['worst']:6.1f} | "
          + " ".join(f"{lo[ds]['held_out']:6.1f}" for ds in devset.DATASETS))
    fa = clean_false_alerts()
    report["skab_anomaly_free_alerts_per_10k"] = fa
    print("\nSKAB anomaly-free run, alert onsets per 10,000 readings (defaults): "
          + ", ".join(f"{k} {v:.1f}" for k, v in fa.items() if k != "readings") + f" ({fa['readings']} readings)")
    report["bank_readings_per_s"] = rates
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
