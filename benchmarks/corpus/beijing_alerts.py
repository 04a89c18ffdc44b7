"""Replay every Beijing station through DetectorBank defaults; count alert onsets per metric x detector."""
import sys, json, time
import numpy as np
from urbanpulse.datasets.beijing import station_files, read_station
from urbanpulse.detect import DetectionSettings, DetectorBank

def run():
    files = station_files()
    slots, ts, vals, sm = [], [], [], []
    for f in files:
        d = read_station(f)
        for m, v in d.values.items():
            sm.append((d.station, m))
            k = len(sm) - 1
            slots.append(np.full(len(v), k, np.int64)); ts.append(d.ts_ms.astype(np.int64) * 1000); vals.append(v)
    bank = DetectorBank(DetectionSettings())
    bank.assign(np.arange(len(sm)), [s for s, _ in sm], [m for _, m in sm])
    t0 = time.time()
    sc = bank.score(np.concatenate(slots), np.concatenate(ts), np.concatenate(vals))
    el = time.time() - t0
    dec = sc.decision
    s = sc.slot
    prev = np.zeros_like(dec)
    prev[1:] = dec[:-1]
    first = np.ones(len(s), bool); first[1:] = s[1:] != s[:-1]
    prev[first] = False
    onset = dec & ~prev
    metrics = sorted({m for _, m in sm})
    years = len(files) * 4.0
    out = {}
    for j, name in enumerate(sc.names):
        per = np.bincount(s[onset[:, j]], minlength=len(sm))
        for m in metrics:
            ks = [k for k, (_, mm) in enumerate(sm) if mm == m]
            out.setdefault(m, {})[name] = int(per[ks].sum())
    print(f"scored {len(sc)} readings in {el:.1f}s; onsets per metric x detector, summed over {len(files)} stations"
          f" (x4 years; per station-year = /{years:.0f})")
    print(f"{'metric':12s}" + "".join(f"{n:>10s}" for n in sc.names) + f"{'total':>8s}{'/st-yr':>8s}")
    for m in metrics:
        row = out[m]; tot = sum(row.values())
        print(f"{m:12s}" + "".join(f"{row[n]:10d}" for n in sc.names) + f"{tot:8d}{tot/years:8.1f}")
    tot = {n: sum(out[m][n] for m in metrics) for n in sc.names}
    print(f"{'all':12s}" + "".join(f"{tot[n]:10d}" for n in sc.names) + f"{sum(tot.values()):8d}")
    return out

if __name__ == "__main__":
    out = run()
    if len(sys.argv) > 1:
        json.dump(out, open(sys.argv[1], "w"), indent=1)
