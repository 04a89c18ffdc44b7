import sys, numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from rows import Fam

f = Fam(sys.argv[1])
thr = float(sys.argv[2])
pos = np.arange(len(f.sc)) - f.offs[f.fid]
top = np.flatnonzero(f.sc >= thr)
vals, inv, cnt = np.unique(f.sc[top], return_inverse=True, return_counts=True)
pair = same = other = 0
for g in np.flatnonzero(cnt == 2):
    a, b = top[inv == g]
    na, nb = f.names[f.fid[a]].rsplit("/", 1)[0], f.names[f.fid[b]].rsplit("/", 1)[0]
    if na == nb and pos[a] == pos[b]:
        pair += 1
    else:
        other += 1
big = (cnt > 2).sum()
print(
    f"values >= thr shared by 2 rows: {(cnt == 2).sum()}: the clean and injected copy of one draw at the same "
    f"row {pair}, other {other}; shared by >2 rows: {big} (rows {cnt[cnt > 2].sum()}, values {vals[cnt > 2]!r})"
)
