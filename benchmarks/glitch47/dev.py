"""glitch47: where the kernel's _glitch emits on the development set (files, rows, inside labelled windows?)."""
import numpy as np
import detection_dev as dd, detection_devset as devset
from urbanpulse.detect.layout import S
from urbanpulse.detect._kernel import GL_EMIT
files = devset.load(False)
from urbanpulse.detect import DetectorBank
bank = DetectorBank(dd._settings({}))
n = len(files)
bank.assign(np.arange(n), [f.name for f in files], ["value"] * n)
sl = np.concatenate([np.full(len(f.values), k, np.int64) for k, f in enumerate(files)])
sc = bank.score(sl, np.concatenate([f.ts_us for f in files]), np.concatenate([f.values for f in files]))
offs = np.cumsum([0] + [len(f.values) for f in files])
full = np.zeros(int(offs[-1])); full[sc.index] = sc.anomaly_score
tot = inw = 0
for k, f in enumerate(files):
    g = bank.state[k, S["gl_n"]]
    if g > 0:
        a = full[offs[k]:offs[k+1]]
        rows = np.flatnonzero(a == GL_EMIT)
        x = np.asarray(f.values, float)
        desc = []
        for r in rows:
            w = any(lo <= r <= hi for lo, hi in f.windows)
            desc.append(f"{r}{'(in)' if w else '(OUT)'} x[{r-3}:{r+1}]={x[max(0,r-3):r+1].round(3).tolist()}")
        print(f.dataset, f.name, "n", int(g), "; ".join(desc))
        tot += g
np.save("/tmp/glitch47/dev_full.npy", full)
print("total emissions", tot)
