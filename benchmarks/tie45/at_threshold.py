import sys, numpy as np

z = np.load(sys.argv[1])
sc, dg, inwin, ds, fid, names = z["score"], z["diag"], z["inwin"], z["ds"], z["fid"], z["names"]
thr = float(sys.argv[2]) if len(sys.argv) > 2 else 0.9953144000021525
m = sc == thr
print("rows == thr:", m.sum(), "inwin", (m & inwin).sum())
for i in np.flatnonzero(m)[:20]:
    print(names[fid[i]], ds[fid[i]], i - z["offs"][fid[i]], dg[i])
near = (sc > thr - 2e-5) & (sc < thr + 2e-5)
print("rows within 2e-5:", near.sum())
for i in np.flatnonzero(near)[:30]:
    print(f"{sc[i]!r}", names[fid[i]], inwin[i], dg[i, :4])
