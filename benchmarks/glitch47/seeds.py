"""glitch47: the kernel's _glitch on detection_families' draws of seeds S0..S1-1 (detection_families.py has no seed
offset; this draws with its `draw` and scores 100 pairs a bank as its sweep does). Per kind: the share of injected
copies where the stage emitted within [onset, onset + 151] (the reading after a glitch at onset..onset + 150), and
the share of clean copies where it emitted at all. usage: seeds.py FAMS S0 S1"""
import sys
import numpy as np
import detection_families as dfam
from urbanpulse.detect import DetectionSettings, DetectorBank
from urbanpulse.detect.layout import S
from urbanpulse.detect._kernel import GL_EMIT

fams = sys.argv[1].split(","); s0, s1 = int(sys.argv[2]), int(sys.argv[3])
allc = []
for f in fams:
    for kind in dfam.ALL_KINDS[f]:
        w = []; c = []
        for lo in range(s0, s1, 100):
            draws = [dfam.draw(f, kind, s) for s in range(lo, min(lo + 100, s1))]
            bank = DetectorBank(DetectionSettings())
            n = 2 * len(draws)
            bank.assign(np.arange(n, dtype=np.int64), [f"s{i}" for i in range(n)], ["value"] * n)
            sl = np.concatenate([np.full(len(x), 2 * j + k, np.int64) for j, d in enumerate(draws) for k, x in enumerate((d.clean, d.injected))])
            ts = np.concatenate([d.ts_us for d in draws for _ in range(2)])
            xs = np.concatenate([x for d in draws for x in (d.clean, d.injected)])
            sc = bank.score(sl, ts, xs)
            b = np.searchsorted(sc.slot, np.arange(n + 1))
            for j, d in enumerate(draws):
                c.append(bank.state[2 * j, S["gl_n"]] > 0)
                r = 2 * j + 1
                idx = np.asarray(sc.index[b[r]:b[r + 1]]) - (len(d.clean) if True else 0)
                a = np.asarray(sc.anomaly_score[b[r]:b[r + 1]])
                # sc.index: row positions in the concatenated input; make them the draw's own
                off = sum(len(dd.clean) + len(dd.injected) for dd in draws[:j]) + len(d.clean)
                rows = np.asarray(sc.index[b[r]:b[r + 1]]) - off
                hit = bank.state[r, S["gl_n"]] > 0 and bool(((a == GL_EMIT) & (rows >= d.onset) & (rows <= d.onset + 151)).any())
                w.append(hit)
        allc += c
        print(f"| {f}:{kind} | {np.mean(w):.2f} | {np.mean(c):.3f} |", flush=True)
print(f"all clean copies: {np.mean(allc):.4f} of {len(allc)} ({int(np.sum(allc))} emitted)")
