"""The broader development set for detection: every labelled series the project may tune on.

Datasets (one name each; leave-one-dataset-out holds out one of them at a time):
- `skab`, `beijing`, `uci`: the existing corpus (benchmarks/corpus/, built on demand);
- `gecco`: GECCO 2018 drinking-water quality, one file per (week-long segment, channel), each
  column rounded to its sensor resolution (the dataset README: injected events carry full double
  precision, a leak a detector must not be able to use); empty rows dropped (unlabelled gaps);
  the anomaly is the first minute of each EVENT run;
- `3w`: Petrobras 3W, one file per (instance, live channel), every 10th second; the anomaly is the
  first row whose class is not 0 (the fault's onset);
- `synthetic`: benchmarks/corpus/synthetic.py (bursty on/off, irregular sampling, smooth periodic,
  quantised mostly-zero, trending, heavy-tailed; spikes, level shifts, drifts, stuck values,
  dropouts, changed periodicity, changed noise), including clean files.

Never the Numenta Anomaly Benchmark or Yahoo S5: those are the project's held-out measurement.
Windows follow NAB (10 % of a file's rows shared among its anomalies, centred on each onset,
first 15 % probationary). Loaded once and cached in benchmarks/results/devset.pkl.
"""

from __future__ import annotations

import csv
import gzip
import json
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import nab_score  # noqa: E402
from corpus import synthetic  # noqa: E402
from corpus.events import events_fit, Event  # noqa: E402

RESULTS = HERE / "results"
CORPUS = RESULTS / "corpus"
CACHE = RESULTS / "devset.pkl"
DATASETS = ("skab", "beijing", "uci", "gecco", "3w", "synthetic")

GECCO_RESOLUTION = {"Tp": 1, "Cl": 2, "pH": 2, "Redox": 0, "Leit": 0, "Trueb": 3, "Cl_2": 3, "Fm": 0, "Fm_2": 0}
GECCO_SEGMENT = 3 * 1440  # three days of minutes (a week leaves only 2 segments whose events fit NAB windows)
GECCO_MAX_FILES = 90
W3_STEP = 10  # every 10th second


@dataclass
class DevFile:
    """One labelled univariate series of the development set."""

    dataset: str
    name: str  # unique, "<dataset>/<file>"
    ts_us: np.ndarray
    values: np.ndarray
    windows: list[tuple[int, int]] = field(default_factory=list)  # row-index limits, inclusive
    kinds: list[str] = field(default_factory=list)
    onsets_us: list[int] = field(default_factory=list)  # the labelled onsets' timestamps


def _datasets_root() -> Path:
    try:
        from urbanpulse.datasets import datasets_root

        return Path(datasets_root())
    except Exception:  # noqa: BLE001 - fall back to the workspace layout
        return HERE.parent.parent / "shared" / "datasets"


def _from_onsets(dataset: str, name: str, ts: np.ndarray, v: np.ndarray, onsets: list[int],
                 kinds: list[str]) -> DevFile:
    return DevFile(dataset, f"{dataset}/{name}", ts, v, nab_score.windows_from_points(ts, onsets), kinds,
                   [int(ts[o]) for o in onsets])


def load_corpus_files() -> list[DevFile]:
    """The existing corpus (skab, beijing_*, uci_*), built first if missing."""
    if not (CORPUS / "manifest.json").is_file():
        from corpus import build_corpus

        build_corpus(CORPUS, _datasets_root())
    man = json.loads((CORPUS / "manifest.json").read_text())
    labels = nab_score.load_labels(CORPUS / "labels" / "combined_windows.json")
    out = []
    for rel in sorted(man):
        cols = nab_score.read_csv_columns(CORPUS / "data" / rel, ("timestamp", "value"))
        ts = nab_score.parse_timestamps(cols["timestamp"])
        v = np.array([float(x) if x.strip() else np.nan for x in cols["value"]])
        sub = rel.split("/")[0]
        ds = "skab" if sub == "skab" else sub.split("_")[0]
        fs = nab_score.FileSeries(rel, ts, np.zeros(len(ts)))
        out.append(DevFile(ds, f"{ds}/{rel}", ts, v, nab_score.window_indices(fs, labels.get(rel, [])),
                           list(man[rel]["kinds"])))
    return out


def read_gecco(root: Path) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """GECCO 2018's rows, Train then Test: timestamps (int64 µs), each channel's values as the
    files hold them (unrounded, NaN where empty; in the files' column order) and the event flag.
    Shared by :func:`load_gecco` and gecco_channel_bound.py, which reads the unrounded values."""
    rows: list[list[str]] = []
    header: list[str] = []
    for part in ("geccoIC2018Train.csv.gz", "geccoIC2018Test.csv.gz"):
        with gzip.open(root / "gecco2018_water_quality" / part, "rt") as fh:
            r = csv.reader(fh)
            header = next(r)
            rows.extend(r)
    ts = np.asarray([x[0].rstrip("Z") for x in rows], dtype="datetime64[us]").astype(np.int64)
    event = np.asarray([x[-1] == "TRUE" for x in rows])
    cols = {col: np.asarray([float(x[ci]) if x[ci] else np.nan for x in rows])
            for ci, col in enumerate(header[1:-1], start=1)}
    return ts, cols, event


def load_gecco(root: Path, seed: int = 2018) -> list[DevFile]:
    """Week-long per-channel GECCO segments whose events fit NAB windows (seeded sample)."""
    ts, raw, event = read_gecco(root)
    cand = []
    for col, v in raw.items():
        v = np.round(v, GECCO_RESOLUTION[col])
        for a in range(0, len(v) - GECCO_SEGMENT // 2, GECCO_SEGMENT):
            b = min(a + GECCO_SEGMENT, len(v))
            keep = ~np.isnan(v[a:b])
            ev = event[a:b][keep]
            starts = np.flatnonzero(ev & ~np.r_[False, ev[:-1]])
            events = [Event(int(s), "gecco_event", 1) for s in starts]
            if not events or len(events) > 5 or not events_fit(int(keep.sum()), events):
                continue
            cand.append((f"{col}_{a // GECCO_SEGMENT:02d}", ts[a:b][keep], v[a:b][keep], [int(s) for s in starts]))
    rng = np.random.default_rng(seed)
    take = sorted(rng.permutation(len(cand))[:GECCO_MAX_FILES].tolist())
    return [_from_onsets("gecco", cand[i][0], cand[i][1], cand[i][2], cand[i][3], ["gecco_event"] * len(cand[i][3]))
            for i in take]


def load_3w(root: Path) -> list[DevFile]:
    """Every live channel of every 3W instance, every 10th second; the onset of its fault."""
    out = []
    for path in sorted((root / "petrobras_3w").glob("*/*.csv.gz")):
        with gzip.open(path, "rt") as fh:
            r = csv.reader(fh)
            header = next(r)
            rows = list(r)[::W3_STEP]
        ts = np.asarray([x[0] for x in rows], dtype="datetime64[us]").astype(np.int64)
        cls = np.asarray([float(x[-1]) if x[-1] else np.nan for x in rows])
        fault = np.flatnonzero(np.nan_to_num(cls, nan=0.0) != 0)
        if not len(fault):
            continue
        onset = int(fault[0])
        for ci, col in enumerate(header[1:-1], start=1):
            v = np.asarray([float(x[ci]) if x[ci] else np.nan for x in rows])
            keep = np.isfinite(v) & (np.abs(v) < 1e30)
            if keep.sum() < 100 or np.nanstd(v[keep]) == 0:
                continue  # dead, frozen or sentinel channel
            row = int(np.cumsum(keep)[onset] - 1)
            if not events_fit(int(keep.sum()), [Event(row, "3w_fault", 1)]):
                continue
            name = f"{path.parent.name}_{path.name.split('.')[0]}_{col}"
            out.append(_from_onsets("3w", name, ts[keep], v[keep], [row], [f"type_{path.parent.name}"]))
    return out


def load_synthetic() -> list[DevFile]:
    """The synthetic families (benchmarks/corpus/synthetic.py)."""
    return [_from_onsets("synthetic", f.name, f.ts_us, f.values, f.onsets, f.kinds) for f in synthetic.generate()]


def load(refresh: bool = False) -> list[DevFile]:
    """The whole development set (cached)."""
    if CACHE.is_file() and not refresh:
        files = [DevFile(**d) for d in pickle.loads(CACHE.read_bytes())]
        if all(f.onsets_us or f.dataset not in MULTICHANNEL or not f.windows for f in files):
            return files  # (a cache from before onsets were kept is rebuilt)
    root = _datasets_root()
    files = load_corpus_files() + load_gecco(root) + load_3w(root) + load_synthetic()
    RESULTS.mkdir(parents=True, exist_ok=True)
    CACHE.write_bytes(pickle.dumps([f.__dict__ for f in files]))  # plain dicts: loadable from any __main__
    return files


MULTICHANNEL = ("gecco", "3w")


def station_key(f: DevFile) -> str | None:
    """The station (GECCO segment, 3W instance) a multichannel file belongs to, else None."""
    stem = f.name.split("/", 1)[1]
    if f.dataset == "gecco":  # "<channel>_<segment>" (channels may contain "_": Cl_2, Fm_2)
        return f"gecco/segment_{stem.rsplit('_', 1)[1]}"
    if f.dataset == "3w":  # "<type>_<well>_<start>_<channel>"
        return f"3w/{stem.rsplit('_', 1)[0]}"
    return None


def stations(files: list[DevFile], scores: dict[str, np.ndarray],
             combine: str = "sidak") -> tuple[list[DevFile], dict[str, np.ndarray]]:
    """The multichannel datasets scored per station instead of per channel.

    GECCO's `EVENT` and 3W's `class` label a minute of the station / a well's instance, not a
    channel (dataset READMEs): an event is typically visible on a few of the channels, and a
    per-channel file counts every channel that does not show it as a missed window. Here each
    station (GECCO segment, 3W instance) is one file: the union of its channels' timestamps, the
    same onsets and NAB windows on the station's rows, and at each timestamp a score from its
    channels' anomaly_scores (`combine_station`). Other datasets pass through unchanged.
    """
    groups: dict[str, list[DevFile]] = {}
    out_files: list[DevFile] = []
    out_scores: dict[str, np.ndarray] = {}
    for f in files:
        key = station_key(f)
        if key is None:
            out_files.append(f)
            out_scores[f.name] = scores[f.name]
        else:
            groups.setdefault(key, []).append(f)
    for key, members in sorted(groups.items()):
        ts = np.unique(np.concatenate([f.ts_us for f in members]))
        sc = np.zeros(len(ts))
        for f in members:
            pos = np.searchsorted(ts, f.ts_us)
            np.maximum.at(sc, pos, scores[f.name])
        onsets = sorted({o for f in members for o in f.onsets_us})
        rows = sorted({int(np.searchsorted(ts, o)) for o in onsets})
        kinds = members[0].kinds[:len(rows)]
        out_files.append(DevFile(members[0].dataset, key, ts, np.full(len(ts), np.nan),
                                 nab_score.windows_from_points(ts, rows), kinds, onsets))
        out_scores[key] = combine_station(sc, len(members), combine)
    return out_files, out_scores


def combine_station(best: np.ndarray, channels: int, combine: str = "sidak") -> np.ndarray:
    """A station's score at each timestamp from the largest of its `channels` channels' scores.

    "max": that largest score as it is. "sidak" (the default): the largest score is a tail
    probability p = 1 - score of one channel, but a station offers `channels` chances at it each
    reading, so a station of nine channels crosses a threshold about nine times as often as one
    series does; the station's own tail is the Sidak correction 1 - (1 - p)^channels (the
    probability that at least one of k independent channels is that extreme), and its score
    1 - that. Monotone in the largest score (a station's ranking of its own readings is unchanged);
    it makes one threshold mean the same for a station of 3 and of 9 channels, and for a single
    series (channels = 1 leaves the score as it is). Only meaningful for scores that are tail
    probabilities (urbanpulse's calibrated anomaly_score, the calibrated HST baseline).
    """
    if combine == "max" or channels <= 1:
        return best
    if combine != "sidak":
        raise ValueError(f"unknown station combine {combine!r}: use 'sidak' or 'max'")
    p = np.clip(1.0 - best, 0.0, 1.0)
    with np.errstate(divide="ignore"):
        tail = -np.expm1(channels * np.log1p(-p))  # 1 - (1 - p)^k, exact for small p
    return 1.0 - tail


def composition(files: list[DevFile]) -> str:
    """A table of files, rows, windows and clean files per dataset."""
    lines = [f"{'dataset':10s} {'files':>5s} {'rows':>9s} {'windows':>7s} {'clean files':>11s}"]
    for ds in DATASETS:
        fs = [f for f in files if f.dataset == ds]
        lines.append(f"{ds:10s} {len(fs):5d} {sum(len(f.values) for f in fs):9d} "
                     f"{sum(len(f.windows) for f in fs):7d} {sum(1 for f in fs if not f.windows):11d}")
    lines.append(f"{'total':10s} {len(files):5d} {sum(len(f.values) for f in files):9d} "
                 f"{sum(len(f.windows) for f in files):7d}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(composition(load(refresh="--refresh" in sys.argv)))
