"""Build the labelled corpus: read the shared datasets, cut NAB-like files, label, write.

Files are NAB-like: Beijing files are 5,000 hourly rows (about 7 months), UCI files a third of
the 9,357-row year (3,119 rows), each with 1-5 anomalies whose NAB windows do not overlap and
start after the probationary period. SKAB runs are kept whole (about 1,150 one-second rows each;
the pump experiments are that long) with one file per (run, sensor) for the sensors listed in
`SKAB_COLUMNS`; each labelled fault period contributes its onset as the anomaly.
"""

from __future__ import annotations

import csv
import gzip
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from corpus.events import Event, events_fit, natural_events
from corpus.inject import inject
from nab_score import windows_from_points

BEIJING_SEGMENT = 5000
UCI_SEGMENTS = 3
SKAB_COLUMNS = ("Accelerometer1RMS", "Current", "Pressure", "Volume Flow RateRMS")
MAX_FILES_PER_SUBCORPUS = 40
MAX_EVENTS_PER_FILE = 5
INJECTED_PER_FILE = (3, 5)  # inclusive range of faults per injected file

# Metrics whose readings are continuous, so a long run of identical values is a stuck sensor.
BEIJING_FLATLINE = {"pm2_5", "pm10", "no2", "temperature", "pressure", "dew_point"}
# Documented instrument maxima (datasets/beijing_multisite_air_quality/README.md).
BEIJING_CEILING = {"pm2_5": 999.0, "pm10": 999.0, "co": 10000.0, "so2": 500.0}
BEIJING_NATURAL_METRICS = ("pm2_5", "pm10", "no2", "co", "so2", "temperature", "pressure", "dew_point")
BEIJING_INJECT_METRICS = ("pm2_5", "no2", "o3", "temperature", "pressure", "dew_point")
NON_NEGATIVE = {"pm2_5", "pm10", "no2", "co", "so2", "o3", "CO(GT)", "NOx(GT)", "NO2(GT)", "C6H6(GT)"}

UCI_UTC_OFFSET_H = 1  # the file has no zone; taken as fixed UTC+1 (its clock has no DST jumps)
UCI_NATURAL_COLUMNS = ("CO(GT)", "NOx(GT)", "NO2(GT)", "PT08.S1(CO)", "PT08.S2(NMHC)", "PT08.S3(NOx)",
                       "PT08.S4(NO2)", "PT08.S5(O3)", "T", "RH", "AH")
UCI_FLATLINE = set(UCI_NATURAL_COLUMNS)


@dataclass
class CorpusWriter:
    """Writes files and accumulates windows, points and the manifest."""

    out: Path
    windows: dict[str, list[list[str]]] = field(default_factory=dict)
    points: dict[str, list[str]] = field(default_factory=dict)
    manifest: dict[str, dict] = field(default_factory=dict)

    def add(self, rel: str, ts_us: np.ndarray, values: np.ndarray, events: list[Event] | None,
            windows_rows: list[tuple[int, int]] | None = None, **meta) -> None:
        path = self.out / "data" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        text = _fmt_ts(ts_us)
        with open(path, "w", newline="") as fh:
            fh.write("timestamp,value\n")
            fh.writelines(f"{t},{repr(float(x))}\n" for t, x in zip(text, values))
        if windows_rows is None:
            windows_rows = windows_from_points(ts_us, [ev.row for ev in events or []])
            self.points[rel] = [text[ev.row] for ev in events or []]
        self.windows[rel] = [[text[s], text[e]] for s, e in windows_rows]
        self.manifest[rel] = {
            "rows": int(len(ts_us)),
            "anomalies": len(windows_rows),
            "kinds": dict(Counter(ev.kind for ev in events or [])),
            "events": [{"timestamp": text[ev.row], "kind": ev.kind, "length": ev.length} for ev in events or []],
            **meta,
        }

    def finish(self) -> None:
        labels = self.out / "labels"
        labels.mkdir(parents=True, exist_ok=True)
        (labels / "combined_windows.json").write_text(json.dumps(self.windows, indent=1, sort_keys=True))
        (labels / "combined_labels.json").write_text(json.dumps(self.points, indent=1, sort_keys=True))
        (self.out / "manifest.json").write_text(json.dumps(self.manifest, indent=1, sort_keys=True))


def _fmt_ts(ts_us: np.ndarray) -> list[str]:
    seconds = np.asarray(ts_us, dtype=np.int64).astype("datetime64[us]").astype("datetime64[s]")
    return [str(t).replace("T", " ") for t in seconds]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


# --- SKAB ---------------------------------------------------------------------------------


def _read_skab(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    with gzip.open(path, "rt") as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    header, body = rows[0], [r for r in rows[1:] if r]
    ts = np.asarray([r[0] for r in body], dtype="datetime64[us]").astype(np.int64)
    cols = {h: np.asarray([float(r[i]) if r[i] else np.nan for r in body]) for i, h in enumerate(header) if i}
    order = np.argsort(ts, kind="stable")
    ts = ts[order]
    first = np.r_[True, np.diff(ts) > 0]  # drop duplicate seconds, keep the first
    return ts[first], {h: c[order][first] for h, c in cols.items()}


def build_skab(root: Path, w: CorpusWriter) -> None:
    files = sorted((root / "skab").glob("*/*.csv.gz"), key=lambda p: (p.parent.name, int(p.name.split(".")[0]) if p.name[0].isdigit() else -1))
    for path in files:
        ts, cols = _read_skab(path)
        label = cols.get("anomaly")
        s, e = _label_runs(label) if label is not None else ([], [])
        # NAB convention: the label is the fault onset, the window is NAB's (10 % of the rows,
        # centred on it), not the whole fault period (see benchmarks/README.md for why).
        events = [Event(int(a), "skab_fault", int(b - a)) for a, b in zip(s, e)]
        run = f"{path.parent.name}_{path.name.split('.')[0]}"
        for col in SKAB_COLUMNS:
            v = cols[col]
            ok = ~np.isnan(v)
            w.add(f"skab/{run}_{_slug(col)}.csv", ts[ok], v[ok], events,
                  source=f"skab/{path.parent.name}/{path.name}", metric=col)


def _label_runs(label: np.ndarray):
    from corpus.events import runs

    return runs(np.nan_to_num(label) > 0.5)


# --- Beijing ------------------------------------------------------------------------------


def _segments(n: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, n)) for a in range(0, n - size // 2, size)]


def build_beijing(root: Path, w: CorpusWriter, rng: np.random.Generator) -> None:
    from urbanpulse.datasets import beijing

    natural, clean = [], []
    for path in beijing.station_files(root / beijing.DATASET_NAME):
        st = beijing.read_station(path)
        ts_us = st.ts_ms.astype(np.int64) * 1000
        for metric in sorted(set(BEIJING_NATURAL_METRICS) | set(BEIJING_INJECT_METRICS)):
            for a, b in _segments(len(st), BEIJING_SEGMENT):
                seg = st.values[metric][a:b]
                keep, events = natural_events(seg, flatline=metric in BEIJING_FLATLINE,
                                              ceiling=BEIJING_CEILING.get(metric))
                n = int(keep.sum())
                meta = dict(source=f"beijing/{path.name}", metric=metric, station=st.station)
                if metric in BEIJING_NATURAL_METRICS and events and len(events) <= MAX_EVENTS_PER_FILE and events_fit(n, events):
                    natural.append((f"beijing_natural/{_slug(st.station)}_{metric}_{a // BEIJING_SEGMENT}.csv",
                                    ts_us[a:b][keep], seg[keep], events, meta))
                elif metric in BEIJING_INJECT_METRICS and not events:
                    clean.append((f"beijing_injected/{_slug(st.station)}_{metric}_{a // BEIJING_SEGMENT}.csv",
                                  ts_us[a:b][keep], seg[keep], meta, []))
    _emit_natural(w, natural, rng)
    _emit_injected(w, clean, rng)


def _emit_natural(w: CorpusWriter, natural: list, rng: np.random.Generator) -> None:
    """All qualifying natural files when few, else a seeded sample that keeps every fault kind."""
    if len(natural) > MAX_FILES_PER_SUBCORPUS:
        rare = [i for i, x in enumerate(natural) if any(ev.kind != "outage" for ev in x[3])]
        rest = [i for i in range(len(natural)) if i not in set(rare)]
        rare = sorted(rng.permutation(rare)[: MAX_FILES_PER_SUBCORPUS * 2 // 3].tolist())
        take = sorted(rare + rng.permutation(rest)[: MAX_FILES_PER_SUBCORPUS - len(rare)].tolist())
        natural = [natural[i] for i in take]
    for rel, ts, v, events, meta in natural:
        w.add(rel, ts, v, events, **meta)


def _emit_injected(w: CorpusWriter, clean: list, rng: np.random.Generator) -> None:
    """Inject faults into a seeded sample of stretches; natural events there stay labelled."""
    order = rng.permutation(len(clean))
    written = 0
    for i in order.tolist():
        rel, ts, v, meta, natural = clean[i]
        k = int(rng.integers(INJECTED_PER_FILE[0], INJECTED_PER_FILE[1] + 1)) - len(natural)
        try:
            ts2, v2, events = inject(ts, v, max(k, 1), rng, non_negative=meta["metric"] in NON_NEGATIVE,
                                     existing=natural)
        except ValueError:
            continue  # natural events leave no room: skip this stretch
        w.add(rel, ts2, v2, events, **meta)
        written += 1
        if written == MAX_FILES_PER_SUBCORPUS:
            break


# --- UCI air quality ----------------------------------------------------------------------


def _read_uci(root: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    path = root / "uci_air_quality" / "AirQualityUCI.csv"
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r]
    header, body = rows[0], rows[1:]
    local = np.asarray([f"{r[0]}T{r[1]}" for r in body], dtype="datetime64[us]")
    ts = (local - np.timedelta64(UCI_UTC_OFFSET_H, "h")).astype(np.int64)
    cols = {}
    for i, h in enumerate(header[2:], start=2):
        v = np.asarray([float(r[i]) if r[i] else np.nan for r in body])
        v[v == -200] = np.nan  # the dataset's missing-value marker
        cols[h] = v
    return ts, cols


def build_uci(root: Path, w: CorpusWriter, rng: np.random.Generator) -> None:
    ts, cols = _read_uci(root)
    size = int(np.ceil(len(ts) / UCI_SEGMENTS))
    natural, clean = [], []
    for col in UCI_NATURAL_COLUMNS:
        for k, (a, b) in enumerate(_segments(len(ts), size)):
            seg = cols[col][a:b]
            keep, events = natural_events(seg, flatline=col in UCI_FLATLINE, ceiling=None)
            n = int(keep.sum())
            meta = dict(source="uci_air_quality/AirQualityUCI.csv", metric=col)
            rel = f"{_slug(col)}_{k}.csv"
            if events and len(events) <= MAX_EVENTS_PER_FILE and events_fit(n, events):
                natural.append((f"uci_natural/{rel}", ts[a:b][keep], seg[keep], events, meta))
            if len(events) <= 2 and n > 0.8 * size and (not events or events_fit(n, events)):
                # UCI has outages everywhere: inject next to the natural ones and label both
                clean.append((f"uci_injected/{rel}", ts[a:b][keep], seg[keep], meta, events))
    _emit_natural(w, natural, rng)
    _emit_injected(w, clean, rng)


# --- entry point --------------------------------------------------------------------------


def build_corpus(out: Path, datasets_root: Path, seed: int = 20240603) -> dict[str, dict]:
    """Build every sub-corpus into `out` (replacing `out/data`); return the manifest."""
    import shutil

    if (out / "data").exists():
        shutil.rmtree(out / "data")
    w = CorpusWriter(out)
    rng = np.random.default_rng(seed)
    for name, step in (("skab", lambda: build_skab(datasets_root, w)),
                       ("beijing", lambda: build_beijing(datasets_root, w, rng)),
                       ("uci", lambda: build_uci(datasets_root, w, rng))):
        print(f"building {name} ...", file=sys.stderr)
        step()
    w.finish()
    return w.manifest
