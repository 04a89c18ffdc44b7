"""In-process NAB eval (python benchmarks/corpus/fast_eval.py, ~10 s): all corpus files as slots of one DetectorBank (same scores as the CLI,
batch-split invariance). Variants: original timestamps; gap-free (regular timestamps,
windows of gap/outage faults dropped)."""
import sys, json, zlib
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import nab_score
from urbanpulse.detect import DetectionSettings, DetectorBank

CORPUS = Path(__file__).resolve().parents[1] / "results" / "corpus"
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
_cache = {}

def load():
    if _cache: return _cache["d"]
    man = json.loads((CORPUS / "manifest.json").read_text())
    labels = nab_score.load_labels(CORPUS / "labels" / "combined_windows.json")
    files = []
    for rel in sorted(man):
        cols = nab_score.read_csv_columns(CORPUS / "data" / rel, ("timestamp", "value"))
        ts = nab_score.parse_timestamps(cols["timestamp"])
        v = np.array([float(x) if x.strip() else np.nan for x in cols["value"]])
        files.append((rel, ts, v))
    _cache["d"] = (man, labels, files)
    return _cache["d"]

def run_bank(settings, gap_free):
    man, labels, files = load()
    bank = DetectorBank(settings)
    n = len(files)
    bank.assign(np.arange(n), [f[0] for f in files], ["value"] * n)
    sl, T, V = [], [], []
    for k, (rel, ts, v) in enumerate(files):
        if gap_free:
            dt = int(np.median(np.diff(ts)))
            ts = ts[0] + np.arange(len(ts), dtype=np.int64) * dt
        sl.append(np.full(len(ts), k, np.int64)); T.append(ts); V.append(v)
    sc = bank.score(np.concatenate(sl), np.concatenate(T), np.concatenate(V))
    out = {}
    offs = np.cumsum([0] + [len(f[1]) for f in files])
    full = np.zeros(offs[-1]); full[sc.index] = sc.anomaly_score
    for k, (rel, ts, v) in enumerate(files):
        out[rel] = full[offs[k]:offs[k + 1]]
    return out, sc

def evaluate(scores, gap_free, subset=None, quiet=False):
    man, labels, files = load()
    series, windows = {}, {}
    for rel, ts, v in files:
        if subset is not None and rel not in subset: continue
        s = nab_score.FileSeries(rel, ts, scores[rel])
        w = nab_score.window_indices(s, labels.get(rel, []))
        if gap_free:
            ev = man[rel]["events"]
            evts = nab_score.parse_timestamps([e["timestamp"] for e in ev]) if ev else np.zeros(0, np.int64)
            keep = []
            for a, b in w:
                kinds = [e["kind"] for e, t in zip(ev, evts) if ts[a] <= t <= ts[b]]
                if not kinds or any(k not in ("gap", "outage") for k in kinds):
                    keep.append((a, b))
            w = keep
        series[rel] = s; windows[rel] = w
    subs = sorted({n.split("/")[0] for n in series})
    rep = {}
    for p in PROFILES:
        res = nab_score.score_corpus(series, windows, p)
        rep[p] = {"overall": res.subset(series), "thr": res.threshold,
                  **{s: res.subset(n for n in series if n.startswith(s + "/")) for s in subs}}
    return rep, subs

def show(rep, subs, label):
    p = rep
    line = f"{label:10s} overall {p['standard']['overall']['normalized']:5.1f}/{p['reward_low_FP_rate']['overall']['normalized']:5.1f}/{p['reward_low_FN_rate']['overall']['normalized']:5.1f} thr {p['standard']['thr']:.3f} |"
    for s in subs:
        line += f" {s[:9]} {p['standard'][s]['normalized']:5.1f}"
    print(line, flush=True)

def halves():
    man, labels, files = load()
    a = {f[0] for f in files if zlib.crc32(f[0].encode()) % 2 == 0}
    b = {f[0] for f in files} - a
    return a, b

def full_report(settings=None, tag="", do_halves=True):
    settings = settings or DetectionSettings()
    for gf in (False, True):
        scores, _ = run_bank(settings, gf)
        rep, subs = evaluate(scores, gf)
        show(rep, subs, f"{tag}{'gapfree' if gf else 'orig'}")
        if do_halves:
            for i, h in enumerate(halves()):
                r, s = evaluate(scores, gf, h)
                show(r, s, f"  half{i}")

if __name__ == "__main__":
    import time; t = time.time()
    full_report()
    print(f"{time.time()-t:.0f}s")
