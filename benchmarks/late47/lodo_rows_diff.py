"""late47: the development-set rows whose anomaly_score differs between main's and the branch's LODO caches (detection_choose.py --cache), with the file and whether the row is inside a labelled window."""
import sys, numpy as np
sys.path.insert(0, "benchmarks")
import detection_devset as devset
files = devset.load(False)
a = np.load('/tmp/lead47/main_g47/lodo.npz')['b:b5k:{}']; b = np.load('/tmp/lead47/late47_b3/lodo.npz')['b:b5k:{}']
offs = np.cumsum([0] + [len(f.values) for f in files])
d = np.flatnonzero(a != b)
print("rows differing", len(d))
for r in d:
    k = np.searchsorted(offs, r, side="right") - 1
    f = files[k]; i = r - offs[k]
    inw = any(lo <= i <= hi for lo, hi in f.windows)
    print(f.dataset, f.name, i, f"main {a[r]:.6f} -> {b[r]:.6f}", "in window" if inw else "OUTSIDE", f.windows[:3])
