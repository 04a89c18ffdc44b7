"""Which injected anomalies the detectors miss on the shapes of `corpus/families.py` (issue 11, det25).

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/detection_families.py --seeds 300 [--json out.json]
    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/detection_families.py --only onoff:level_shift --show 10
    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/detection_families.py --families server,traffic --nab

Why: the development set scores NAB windows over a few hundred files; a gap on a shape it holds little of
(on/off series of any scale, rates with a daily period, slow temperatures) shows there as a fraction of a point.
Here every family and kind is drawn `--seeds` times and scored with the defaults (one DetectorBank, a slot per
series); per kind:

- missed: the injected copy has no decision (any detector) within `families.within(kind)` readings from the
  onset (3 for a spike, 200 otherwise);
- chance: of the found, how many the clean copy also has a decision in the same rows (found by chance);
- clean: clean copies with a decision onset after the probation (`PROBATION` readings), a false alert;
- by: which detector decided first in the window, over the found.
`--nab` adds a NAB-style score of the anomaly_score (what the held-out benchmark scores, not the decisions): every
injected copy is a file with one NAB window centred on its onset, every clean copy a file without windows, one
threshold pooled over all of them (NAB standard profile, `nab_score.score_corpus`), then the normalised score per
family and kind, per family and overall, and the false-positive rows on the clean copies.
`--show K` prints the first K missed seeds with their parameters and the best score in the window.
`--families a,b` sweeps those families (default: `families.KINDS`, the four whose figure sessions compare;
`server` and `traffic`, fam30, are in `families.EXTRA_KINDS` only, so the default run is what it was). The NAB
threshold is pooled over the copies swept, so a run of other families has its own threshold. blind40's four
held-out-style families (`corpus/families_blind.py`: machine, cloud, online, adprice) run the same way; they are
an untuned estimate, not a target (see that module). `--baseline zscore` NAB-scores the windowed Gaussian of
`corpus/baselines.py` (as `detection_dev.py` runs it) on the same copies instead of the anomaly_score.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import nab_score  # noqa: E402
from corpus import baselines, families, families_blind  # noqa: E402

from urbanpulse.detect import DetectionSettings, DetectorBank, Scores  # noqa: E402

PROBATION = 450  # NAB's 15 % of 3,000 readings
#: every family a run may name: the default four, fam30's two, blind40's four (`corpus/families_blind.py`)
ALL_KINDS: dict[str, tuple[str, ...]] = {**families.ALL_KINDS, **families_blind.KINDS}


def draw(family: str, kind: str, seed: int) -> families.Draw:
    """One seeded pair from whichever module holds the family."""
    if family in families_blind.KINDS:
        return families_blind.draw(family, kind, seed)
    return families.draw(family, kind, seed)


def score_copies(draws: list[families.Draw], settings: DetectionSettings | None = None) -> tuple[Scores, np.ndarray]:
    """Score every draw's clean and injected copy in one bank (slot 2j clean, 2j+1 injected), as the sweep does.

    Returns the bank's scores and the row bounds per slot (`bounds[s]:bounds[s+1]` are slot s's rows), so a
    diagnosis reads exactly the rows the sweep scored."""
    bank = DetectorBank(settings or DetectionSettings())
    n = 2 * len(draws)
    bank.assign(np.arange(n, dtype=np.int64), [f"s{i}" for i in range(n)], ["value"] * n)
    slots, ts, xs = [], [], []
    for j, d in enumerate(draws):
        for k, x in enumerate((d.clean, d.injected)):
            slots.append(np.full(len(x), 2 * j + k, np.int64))
            ts.append(d.ts_us)
            xs.append(x)
    sc = bank.score(np.concatenate(slots), np.concatenate(ts), np.concatenate(xs))
    return sc, np.searchsorted(sc.slot, np.arange(n + 1))


def score_pairs(draws: list[families.Draw], settings: DetectionSettings | None = None,
                scores: dict[str, nab_score.FileSeries] | None = None) -> list[dict]:
    """Score every draw's clean and injected copy (one slot each, one batch); per draw what the sweep reports.

    With `scores`, each copy's anomaly_score is kept there as a NAB file (`<family>/<kind>/<seed>/clean|injected`)."""
    sc, bounds = score_copies(draws, settings)
    out = []
    for j, d in enumerate(draws):
        w = families.within(d.kind)
        rows = {}
        for k in (0, 1):
            a, b = bounds[2 * j + k], bounds[2 * j + k + 1]
            rows[k] = (sc.decision[a:b], sc.score[a:b], sc.anomaly_score[a:b])
        if scores is not None:
            for k, tag in ((0, "clean"), (1, "injected")):
                name = f"{d.family}/{d.kind}/{d.seed}/{tag}"
                scores[name] = nab_score.FileSeries(name, d.ts_us, np.asarray(rows[k][2], dtype=np.float64))
        dec_c, _, _ = rows[0]
        dec_i, s_i, an_i = rows[1]
        win = slice(d.onset, d.onset + w)
        hit = np.flatnonzero(dec_i[win].any(axis=1))
        found = len(hit) > 0
        by = None
        if found:
            by = ",".join(sc.names[c] for c in np.flatnonzero(dec_i[d.onset + hit[0]]))
        alert_c = dec_c.any(axis=1)
        onsets_c = np.flatnonzero(alert_c & ~np.r_[False, alert_c[:-1]])
        out.append({
            "family": d.family, "kind": d.kind, "seed": d.seed, "onset": d.onset, "found": found,
            "chance": bool(found and dec_c[win].any()), "by": by,
            "clean_alerts": [int(r) for r in onsets_c if r >= PROBATION],
            "clean_by": sorted({sc.names[c] for r in onsets_c if r >= PROBATION for c in np.flatnonzero(dec_c[r])}),
            "best": {nm: round(float(s_i[win, c].max()), 3) for c, nm in enumerate(sc.names)},
            "best_anomaly_score": round(float(an_i[win].max()), 4),
            "params": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.params.items()},
        })
    return out


def sweep(seeds: int, only: list[str] | None = None, settings: DetectionSettings | None = None,
          scores: dict[str, nab_score.FileSeries] | None = None, fams: list[str] | None = None) -> list[dict]:
    """Every kind of `fams` (default `families.KINDS`'s; or `only`, "family:kind", of any family), seeds 0 ..
    seeds-1 (anomaly_scores kept in `scores`)."""
    fams = list(families.KINDS) if fams is None else fams
    unknown = [f for f in fams if f not in ALL_KINDS]
    if unknown:
        raise SystemExit(f"unknown families {unknown}; use some of {list(ALL_KINDS)}")
    if only:
        fams = fams + [f for f in ALL_KINDS if f not in fams and any(o.startswith(f + ":") for o in only)]
    res = []
    for fam in fams:
        for kind in ALL_KINDS[fam]:
            if only and f"{fam}:{kind}" not in only:
                continue
            draws = [draw(fam, kind, s) for s in range(seeds)]
            for lo in range(0, len(draws), 100):  # batches of 100 pairs
                res.extend(score_pairs(draws[lo:lo + 100], settings, scores))
    return res


def _order(key: tuple[str, str]) -> tuple[int, int]:
    """A (family, kind)'s place in `ALL_KINDS` (the tables' row order)."""
    return list(ALL_KINDS).index(key[0]), ALL_KINDS[key[0]].index(key[1])


def table(res: list[dict]) -> str:
    """The miss table: per family and kind, missed / chance / clean alerts / first detector."""
    lines = ["| family | kind | within | draws | missed | found by chance | clean series alerting | found first by |",
             "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["family"], r["kind"]) for r in res}, key=_order)
    for fam, kind in keys:
        rs = [r for r in res if r["family"] == fam and r["kind"] == kind]
        miss = sum(not r["found"] for r in rs)
        ch = sum(r["chance"] for r in rs)
        clean = sum(bool(r["clean_alerts"]) for r in rs)
        by = Counter(r["by"] for r in rs if r["found"]).most_common(3)
        cb = Counter(d for r in rs for d in r["clean_by"]).most_common(3)
        lines.append(f"| {fam} | {kind} | {families.within(kind)} | {len(rs)} | **{miss}** | {ch} | {clean} "
                     f"({', '.join(f'{k} {v}' for k, v in cb)}) | {', '.join(f'{k} {v}' for k, v in by)} |")
    return "\n".join(lines)


def nab_table(res: list[dict], scores: dict[str, nab_score.FileSeries]) -> tuple[str, dict]:
    """NAB standard score of the anomaly_score, one threshold pooled over every copy; per kind, family, overall.

    Why beside the miss table: the held-out benchmark thresholds the anomaly_score (not the decisions), so a
    level change the likelihood scores 0.99+ counts there even where no detector decides, and every clean
    copy's high score costs a false positive."""
    windows = {}
    for r in res:
        base = f"{r['family']}/{r['kind']}/{r['seed']}"
        windows[f"{base}/clean"] = []
        windows[f"{base}/injected"] = nab_score.windows_from_points(scores[f"{base}/injected"].ts_us, [r["onset"]])
    corpus = nab_score.score_corpus(scores, windows, "standard")
    lines = [f"NAB standard, anomaly_score, pooled threshold {corpus.threshold:.5f}: overall "
             f"**{corpus.normalized:.2f}**", "",
             "| family | kind | score | windows found | FP rows (injected copies) | FP rows (clean copies) |",
             "|---|---|---|---|---|---|"]
    summary: dict = {"threshold": corpus.threshold, "overall": corpus.normalized, "kinds": {}, "families": {}}
    keys = sorted({(r["family"], r["kind"]) for r in res}, key=_order)
    for fam, kind in keys:
        inj = [n for n in scores if n.startswith(f"{fam}/{kind}/") and n.endswith("/injected")]
        cln = [n for n in scores if n.startswith(f"{fam}/{kind}/") and n.endswith("/clean")]
        sub = corpus.subset(inj + cln)
        fp_i, fp_c = corpus.subset(inj)["fp_rows"], corpus.subset(cln)["fp_rows"]
        summary["kinds"][f"{fam}:{kind}"] = sub["normalized"]
        lines.append(f"| {fam} | {kind} | {sub['normalized']:.2f} | {sub['detected_windows']} of {sub['windows']} "
                     f"| {fp_i} | {fp_c} |")
    for fam in ALL_KINDS:
        names = [n for n in scores if n.startswith(f"{fam}/")]
        if names:
            summary["families"][fam] = corpus.subset(names)["normalized"]
    lines.append("")
    lines.append("per family: " + ", ".join(f"{f} {v:.2f}" for f, v in summary["families"].items()))
    return "\n".join(lines), summary


def baseline_scores(scores: dict[str, nab_score.FileSeries], fams: list[str],
                    name: str) -> dict[str, nab_score.FileSeries]:
    """The same copies scored by a baseline of `corpus/baselines.py` (the windowed Gaussian `zscore`, as
    `detection_dev.py` runs it), so its NAB figure on the families sits beside the detectors'."""
    out = {}
    for key, fs in scores.items():
        fam, kind, seed, tag = key.split("/")
        d = draw(fam, kind, int(seed))
        x = d.clean if tag == "clean" else d.injected
        out[key] = nab_score.FileSeries(key, fs.ts_us, baselines.detect(name, d.ts_us, x, np.random.default_rng(0)))
    return out


def main() -> None:
    """Run the sweep, print the table (and missed examples), optionally write every draw's row as JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=300)
    ap.add_argument("--only", action="append", help="family:kind (repeatable)")
    ap.add_argument("--show", type=int, default=0, help="print this many missed draws per kind")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--nab", action="store_true", help="also score the anomaly_score NAB-style (see above)")
    ap.add_argument("--families", help="comma-separated families to sweep (default: " + ",".join(families.KINDS)
                    + "; also " + ",".join(families.EXTRA_KINDS) + "; blind40's "
                    + ",".join(families_blind.KINDS) + ")")
    ap.add_argument("--baseline", choices=["zscore"], help="NAB-score this baseline's score instead of the "
                    "anomaly_score (the miss table stays the detectors')")
    ap.add_argument("--settings", default="{}", help="DetectionSettings as JSON (default: the defaults), for a variant")
    a = ap.parse_args()
    scores: dict[str, nab_score.FileSeries] | None = {} if a.nab else None
    settings = DetectionSettings.model_validate(json.loads(a.settings))
    res = sweep(a.seeds, a.only, settings=settings, scores=scores, fams=a.families.split(",") if a.families else None)
    print(table(res))
    nab_summary = None
    if scores is not None:
        if a.baseline:
            scores = baseline_scores(scores, a.families.split(",") if a.families else list(families.KINDS),
                                     a.baseline)
        text, nab_summary = nab_table(res, scores)
        print()
        print(text)
    if a.show:
        for fam, kinds in ALL_KINDS.items():
            for kind in kinds:
                missed = [r for r in res if r["family"] == fam and r["kind"] == kind and not r["found"]]
                for r in missed[:a.show]:
                    print(fam, kind, r["seed"], r["onset"], r["best"], r["best_anomaly_score"], r["params"])
    if a.json:
        a.json.write_text(json.dumps(res if nab_summary is None else {"draws": res, "nab": nab_summary}, indent=1))


if __name__ == "__main__":
    main()
