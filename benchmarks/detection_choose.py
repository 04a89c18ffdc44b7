"""Leave-one-dataset-out with the choice held out, over several candidate sets, from one scoring run.

    python benchmarks/detection_choose.py --cache /tmp/choose.npz \
        off='{"fusion":{"recalibrate_level":0}}' p5k='{}' p1k='{"fusion":{"recalibrate_prior_readings":1000}}' \
        --set s1=off,p5k,p1k --set s2=off,p5k
    python benchmarks/detection_choose.py --recal-sets [--base '{"fusion":{...}}'] --cache /tmp/c.npz --tag t

Why: a default is only as good as the procedure that chose it. `detection_ab.py --choose` scores one
candidate set; the det16b section of benchmarks/README.md showed that which candidates are in the set
moves the held-out figure by several points (held-out SKAB picks a weaker prior from the other five).
This script scores every candidate (a settings patch, as in detection_ab.py) once on the development
set, caches the anomaly_score per file (so a tree's candidates can be compared with another tree's
without re-scoring: give a cache per tree and prefix names with --tag), and then, for each `--set`,
runs LODO where for each held-out dataset the candidate *and* the threshold are chosen on the other
five; per channel and per station (Sidak). With no --set, every candidate alone (the defaults-only
LODO) and all of them together. `--recal-sets` adds the det16b candidates (the second-stage calibration's
prior, memory and level) and the three candidate sets its LODO choice was run on (S1-S3, and ALL of them),
each candidate with `--base` merged in: the figure "with the choice held out" of benchmarks/README.md, det17.
`--one-se` adds a second column for those sets (choice32, added after session 31's regression, its rule written
down before it was run): the simplest candidate (`simplicity`) whose training score is within one bootstrap
standard error of the best one's, instead of the best one.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import detection_ab as ab  # noqa: E402
import detection_dev as dd  # noqa: E402
import detection_devset as devset  # noqa: E402
import nab_score  # noqa: E402


# det16b's candidates: the second-stage calibration (fusion.recalibrate_*) and the sets its LODO choice was run on
RECAL_CANDIDATES: dict[str, dict] = {
    "off": {"recalibrate_level": 0.0}, "p5k": {},
    "p200": {"recalibrate_prior_readings": 200.0}, "p1k": {"recalibrate_prior_readings": 1000.0},
    "p1k_m5k": {"recalibrate_prior_readings": 1000.0, "recalibrate_memory": 5000.0},
    "l09_p1k": {"recalibrate_level": 0.9, "recalibrate_prior_readings": 1000.0},
    "l0999_p1k": {"recalibrate_level": 0.999, "recalibrate_prior_readings": 1000.0},
    **{f"p{k}k": {"recalibrate_prior_readings": k * 1000.0} for k in (2, 3, 4, 6, 7, 10, 20)},
    **{f"m{k}k": {"recalibrate_memory": k * 1000.0} for k in (5, 10, 50)},
    "l098": {"recalibrate_level": 0.98}, "l0995": {"recalibrate_level": 0.995},
}
RECAL_SETS: dict[str, list[str]] = {
    "S1": ["off", "p5k", "p200", "p1k", "p1k_m5k", "l09_p1k", "l0999_p1k"],
    "S2": ["off", "p5k", "p3k", "p4k", "p6k", "p7k", "p10k", "p20k", "m5k", "m10k", "m50k", "l098", "l0995"],
    "S3": ["off", "p5k", "p2k", "p3k", "p4k", "p6k", "p7k", "m10k"],
    "ALL": list(RECAL_CANDIDATES),
    "defaults": ["p5k"],
}


def merged(base: dict, patch: dict) -> dict:
    """`patch` over `base` (two detection_ab.py-style patches; the patch wins, detector fields merge)."""
    out = json.loads(json.dumps(base))
    for section, fields in patch.items():
        if section == "defaults":
            for det, params in fields.items():
                out.setdefault("defaults", {}).setdefault(det, {}).update(params)
        else:
            out.setdefault(section, {}).update(fields)
    return out


def score_all(files, patches: dict[str, dict], cache: Path | None, tag: str) -> dict[str, dict[str, np.ndarray]]:
    """anomaly_score per candidate and file, read from / added to the cache (keyed by tag:name and the patch)."""
    got: dict[str, np.ndarray] = dict(np.load(cache)) if cache and cache.is_file() else {}
    runs = {}
    dirty = False
    for name, patch in patches.items():
        key = f"{tag}:{name}:{json.dumps(patch, sort_keys=True)}"
        if key in got:
            flat = got[key]
        else:
            sc, _ = ab.run(files, patch)
            flat = np.concatenate([sc[f.name] for f in files]).astype(np.float64)
            got[key] = flat
            dirty = True
            print(f"scored {tag}:{name}", flush=True)
        offs = np.cumsum([0] + [len(f.values) for f in files])
        runs[f"{tag}:{name}" if tag else name] = {f.name: flat[offs[k]:offs[k + 1]] for k, f in enumerate(files)}
    if cache and dirty:
        np.savez(cache, **got)
    return runs


def choose(files, runs: dict[str, dict[str, np.ndarray]], names: list[str]) -> dict:
    """LODO choosing among `names`, per channel and per station (Sidak)."""
    out = {}
    sub = {n: runs[n] for n in names}
    out["channel"] = dd.lodo(files, sub)
    st = {}
    sfiles = files
    for n, sc in sub.items():
        sfiles, st[n] = devset.stations(files, sc, "sidak")
    out["station"] = dd.lodo(sfiles, st)
    return out


def simplicity(name: str) -> tuple:
    """Sort key of a second-stage candidate, simplest first (choice32's one-standard-error column, its rule written
    down in benchmarks/README.md before it was run): the prior's weight in pseudo-emissions above the level,
    k0 = (1 - level) x prior readings, larger first (`off`, no second stage, first of all); then the longer memory;
    then the name."""
    base = name.split(":")[-1]
    f = {"recalibrate_level": 0.99, "recalibrate_prior_readings": 5000.0, "recalibrate_memory": 20000.0,
         **RECAL_CANDIDATES[base]}
    k0 = (np.inf if f["recalibrate_level"] == 0
          else (1.0 - f["recalibrate_level"]) * f["recalibrate_prior_readings"])
    return (-k0, -f["recalibrate_memory"], base)


def _boot_se(res, resamples: int = 200, seed: int = 0) -> float:
    """Bootstrap standard error of a pooled NAB normalised score over its files, the threshold held fixed."""
    raw = np.array([f.raw for f in res.files])
    null = np.array([f.null for f in res.files])
    perf = np.array([f.perfect for f in res.files])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(raw), (resamples, len(raw)))
    r, nl, pf = raw[idx].sum(1), null[idx].sum(1), perf[idx].sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = 100.0 * (r - nl) / (pf - nl)
    return float(np.nanstd(v, ddof=1))


def lodo_1se(files, runs: dict[str, dict[str, np.ndarray]], profile: str = "standard") -> dict:
    """detection_dev.lodo with the one-standard-error rule: for each held-out dataset, the simplest candidate
    (`simplicity`) whose training score is within one bootstrap standard error of the best one's, at its own
    best training threshold; that dataset scored there."""
    out = {}
    for ds in devset.DATASETS:
        train = [f for f in files if f.dataset != ds]
        test = [f for f in files if f.dataset == ds]
        tr = {}
        for name, scores in runs.items():
            ser, win = dd._series(train, scores)
            tr[name] = nab_score.score_corpus(ser, win, profile)
        best = max(tr, key=lambda n: tr[n].normalized)
        se = _boot_se(tr[best])
        ok = [n for n in tr if tr[n].normalized >= tr[best].normalized - se]
        pick = min(ok, key=simplicity)
        ser, win = dd._series(test, runs[pick])
        r = nab_score.score_corpus(ser, win, profile, threshold=tr[pick].threshold)
        out[ds] = {"chosen": pick, "best": best, "se": se, "threshold": tr[pick].threshold,
                   "train": tr[pick].normalized, "train_best": tr[best].normalized, "held_out": r.normalized}
    vals = [out[ds]["held_out"] for ds in devset.DATASETS]
    out["mean"] = float(np.mean(vals))
    out["worst"] = float(np.min(vals))
    return out


def choose_1se(files, runs: dict[str, dict[str, np.ndarray]], names: list[str]) -> dict:
    """`choose` with the one-standard-error rule (`lodo_1se`), per channel and per station (Sidak)."""
    sub = {n: runs[n] for n in names}
    out = {"channel": lodo_1se(files, sub)}
    st = {}
    sfiles = files
    for n, sc in sub.items():
        sfiles, st[n] = devset.stations(files, sc, "sidak")
    out["station"] = lodo_1se(sfiles, st)
    return out


def _line(label: str, lo: dict) -> str:
    return (f"{label}: mean {lo['mean']:5.1f} worst {lo['worst']:5.1f} | "
            + " ".join(f"{d} {lo[d]['held_out']:.1f} ({lo[d]['chosen']})" for d in devset.DATASETS))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("patches", nargs="*", help="NAME=JSON settings patches (detection_ab.py's form)")
    ap.add_argument("--set", action="append", default=[], help="NAME=cand1,cand2,... a candidate set")
    ap.add_argument("--cache", type=Path, default=None, help="npz of scores per candidate (read and extended)")
    ap.add_argument("--tag", default="", help="prefix of this tree's candidate names (to mix trees' caches)")
    ap.add_argument("--also", type=Path, action="append", default=[],
                    help="another tree's cache: its tagged candidates join the pool (names tag:name)")
    ap.add_argument("--recal-sets", action="store_true", help="det16b's candidates and candidate sets (S1-S3, ALL)")
    ap.add_argument("--base", default="{}", help="a patch merged under every candidate (JSON)")
    ap.add_argument("--one-se", action="store_true",
                    help="also the one-standard-error rule's column (choice32; second-stage candidates only)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    files = devset.load(False)
    patches = {}
    for arg in a.patches:
        name, _, js = arg.partition("=")
        patches[name] = json.loads(js or "{}")
    base = json.loads(a.base)
    if a.recal_sets:
        patches.update({n: {"fusion": dict(p)} for n, p in RECAL_CANDIDATES.items()})
    patches = {n: merged(base, p) for n, p in patches.items()}
    runs = score_all(files, patches, a.cache, a.tag)
    offs = np.cumsum([0] + [len(f.values) for f in files])
    for other in a.also:
        for key, flat in np.load(other).items():
            if len(flat) == offs[-1]:
                runs[":".join(key.split(":")[:2])] = {f.name: flat[offs[k]:offs[k + 1]] for k, f in enumerate(files)}
    sets = {k: list(v) for k, v in RECAL_SETS.items()} if a.recal_sets else {}
    for s in a.set:
        label, _, names = s.partition("=")
        sets[label] = names.split(",")
    sets = {k: [(f"{a.tag}:{n}" if a.tag and ":" not in n else n) for n in v] for k, v in sets.items()}
    if not sets:
        sets = {n: [n] for n in runs}
        sets["all"] = list(runs)
    res = {}
    for label, names in sets.items():
        r = choose(files, runs, names)
        res[label] = r
        print(_line(f"{label:18s} channel", r["channel"]))
        print(_line(f"{label:18s} station", r["station"]), flush=True)
        if a.one_se and all(n.split(":")[-1] in RECAL_CANDIDATES for n in names) and len(names) > 1:
            r1 = choose_1se(files, runs, names)
            res[label + "_1se"] = r1
            print(_line(f"{label + ' 1se':18s} channel", r1["channel"]))
            print(_line(f"{label + ' 1se':18s} station", r1["station"]), flush=True)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
