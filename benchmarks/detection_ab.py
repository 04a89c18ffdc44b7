"""Settings patches of the detection defaults side by side in one run (an A/B of code behind a setting).

    python benchmarks/detection_ab.py base='{}' trend_off='{"fusion": {"likelihood_trend_threshold": 0}}'

Each argument is NAME=JSON, a patch of the `detection:` section as `detection_dev.CANDIDATES` writes
them ("defaults": {detector: {field: value}}, any other section: {field: value}). Per patch, on the
development set (benchmarks/detection_devset.py): NAB standard per dataset at the pooled threshold,
the worst dataset and LODO with the defaults only (the threshold chosen without the held-out dataset),
per channel and per station (Sidak); the synthetic windows found at the pooled threshold by
family:kind, and per dataset and labelled kind with the false-positive rows per dataset (where a
dataset's score is lost); decision onsets (rising edges of any detector's decision) per 10,000
readings and the share of windows with an onset (recall), per dataset; the SKAB anomaly-free run's alert onsets.
With --baselines, the two baselines of detection_dev.py (zscore, and River's HalfSpaceTrees from its
cache, see detection_dev.run_hst) are scored the same way (their only choice is the threshold).
With --choose, also LODO with the patches as candidates: for each held-out dataset the patch (and the
threshold) that scores best on the other five, that dataset scored at the choice (how a new default is
chosen without the dataset it is measured on). Writes results/detection_ab.json. About 10-20 s per
patch on the shared VM (the first run also builds the kernel).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import detection_dev as dd  # noqa: E402
import detection_devset as devset  # noqa: E402


def run(files: list[devset.DevFile], patch: dict) -> tuple[dict[str, np.ndarray], dict]:
    """anomaly_score per file and decision onsets / window recall per dataset, from one bank."""
    sc, offs, _ = dd.score_files(files, patch)
    full = np.zeros(int(offs[-1]))
    full[sc.index] = sc.anomaly_score
    alert = np.zeros(int(offs[-1]), bool)
    alert[sc.index] = sc.alert
    scores, onsets = {}, {}
    for k, f in enumerate(files):
        scores[f.name] = full[offs[k]:offs[k + 1]]
        a = alert[offs[k]:offs[k + 1]]
        on = a & ~np.r_[False, a[:-1]]
        d = onsets.setdefault(f.dataset, [0, 0, 0, 0])  # onsets, readings, windows with an onset, windows
        d[0] += int(on.sum())
        d[1] += len(a)
        for lo, hi in f.windows:
            d[2] += int(on[lo:min(hi + 2, len(on))].any())
            d[3] += 1
    tot = np.sum(list(onsets.values()), axis=0)
    onsets["all"] = list(tot)
    return scores, {ds: {"per_10k": o[0] * 1e4 / max(o[1], 1), "recall": o[2] / max(o[3], 1)}
                    for ds, o in onsets.items()}


def report(files, sc) -> dict:
    r = dd.per_dataset(files, sc)
    lo = dd.lodo(files, {"d": sc})
    return {"overall": r["overall"]["normalized"], "worst": r["worst"],
            **{d: r[d]["normalized"] for d in devset.DATASETS}, "thr": r["threshold"],
            "lodo_mean": lo["mean"], "lodo_worst": lo["worst"], "lodo": {d: lo[d]["held_out"] for d in devset.DATASETS}}


def synthetic_found(files, sc, th) -> dict:
    found: dict[str, list[int]] = {}
    for f in files:
        if f.dataset != "synthetic":
            continue
        s = sc[f.name]
        for (a, b), k in zip(f.windows, f.kinds):
            key = f"{f.name.split('/')[1].split('_')[0]}:{k}"
            c = found.setdefault(key, [0, 0])
            c[0] += 1
            c[1] += int((s[a:b + 1] >= th).any())
    return found


def found_by_kind(files, sc, th) -> dict:
    """Windows found (a score >= th inside) per dataset and labelled kind, and false-positive rows per dataset
    (scores >= th outside every window, after the probationary part): where a dataset's score is lost."""
    found: dict[str, list[int]] = {}
    fp: dict[str, int] = {}
    for f in files:
        s = sc[f.name]
        inside = np.zeros(len(s), bool)
        kinds = f.kinds if len(f.kinds) == len(f.windows) else ["?"] * len(f.windows)
        for (a, b), k in zip(f.windows, kinds):
            inside[a:b + 1] = True
            c = found.setdefault(f"{f.dataset}:{k}", [0, 0])
            c[0] += 1
            c[1] += int((s[a:b + 1] >= th).any())
        probation = min(int(0.15 * len(s)), 750)
        fp[f.dataset] = fp.get(f.dataset, 0) + int(((s >= th) & ~inside)[probation:].sum())
    return {"found": found, "fp_rows": fp}


def main(argv: list[str]) -> int:
    files = devset.load(False)
    out = {}
    runs: dict[str, dict] = {}
    sruns: dict[str, dict] = {}
    sfiles = files
    for arg in argv:
        name, _, js = arg.partition("=")
        patch = json.loads(js or "{}")
        t0 = time.time()
        sc, ons = run(files, patch)
        row = {"patch": patch, "channel": report(files, sc)}
        sfiles, ssc = devset.stations(files, sc, "sidak")
        row["station"] = report(sfiles, ssc)
        runs[name], sruns[name] = sc, ssc
        row["synthetic_found"] = synthetic_found(files, sc, row["channel"]["thr"])
        row["onsets"] = ons
        row["by_kind"] = found_by_kind(files, sc, row["channel"]["thr"])
        if "--no-clean" not in sys.argv:
            import urbanpulse.detect as det

            orig = det.DetectionSettings
            patched = dd._settings(patch)
            try:  # the clean run at this patch: dd.clean_false_alerts builds DetectionSettings() itself
                det.DetectionSettings = lambda: patched  # type: ignore[assignment,misc]
                row["skab_clean"] = dd.clean_false_alerts()
            finally:
                det.DetectionSettings = orig
        out[name] = row
        for m in ("channel", "station"):
            r = row[m]
            print(f"{name:14s} {m:8s} overall {r['overall']:5.1f} worst {r['worst']:5.1f} | "
                  + " ".join(f"{d} {r[d]:5.1f}" for d in devset.DATASETS)
                  + f" | LODO {r['lodo_mean']:5.1f} / {r['lodo_worst']:5.1f} ("
                  + " ".join(f"{r['lodo'][d]:.1f}" for d in devset.DATASETS) + f") thr {r['thr']:.5f}", flush=True)
        print(f"{name:14s} synthetic found", {k: f"{h}/{n}" for k, (n, h) in sorted(row['synthetic_found'].items())})
        print(f"{name:14s} found by kind", {k: f"{h}/{n}" for k, (n, h) in sorted(row['by_kind']['found'].items())},
              "FP rows", row["by_kind"]["fp_rows"])
        print(f"{name:14s} onsets/10k, recall", {d: f"{o['per_10k']:.1f}, {o['recall']:.2f}" for d, o in ons.items()})
        if "skab_clean" in row:
            print(f"{name:14s} skab clean any {row['skab_clean']['any']:.2f}  ({time.time() - t0:.0f} s)", flush=True)
    if "--baselines" in sys.argv:
        base = {"zscore": dd.run_zscore(files)}
        try:
            base["hst"] = dd.run_hst(files)
        except SystemExit as exc:  # no current cache and no river here
            print(f"hst skipped: {str(exc).splitlines()[0]}")
        for bname, sc in base.items():
            row = {"channel": report(files, sc)}
            sfiles_b, ssc = devset.stations(files, sc, "sidak")
            row["station"] = report(sfiles_b, ssc)
            out[bname] = row
            for m in ("channel", "station"):
                r = row[m]
                print(f"{bname:14s} {m:8s} overall {r['overall']:5.1f} worst {r['worst']:5.1f} | "
                      + " ".join(f"{d} {r[d]:5.1f}" for d in devset.DATASETS)
                      + f" | LODO {r['lodo_mean']:5.1f} / {r['lodo_worst']:5.1f}", flush=True)
    if "--choose" in sys.argv:
        for label, fs, rr in (("channel", files, runs), ("station", sfiles, sruns)):
            lo = dd.lodo(fs, rr)
            out[f"lodo_choose_{label}"] = lo
            print(f"LODO choosing among the patches, {label}: mean {lo['mean']:.1f} worst {lo['worst']:.1f} | "
                  + " ".join(f"{d} {lo[d]['held_out']:.1f} ({lo[d]['chosen']})" for d in devset.DATASETS), flush=True)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "detection_ab.json").write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main([a for a in sys.argv[1:] if not a.startswith("--")]))
