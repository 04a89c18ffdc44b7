import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from rows import Fam, rank_score

f = Fam(sys.argv[1])
c0 = f.corpus(f.sc)
print(f"main {c0.normalized:.4f} thr {c0.threshold!r}")
r0 = rank_score(f.sc)
print(f"rank only (sanity) {f.corpus(r0).normalized:.4f}")
for lab, keys in (
    ("rc_out", (f.dg[:, 3],)),
    ("stage y", (f.dg[:, 2],)),
    ("rc_out, y", (f.dg[:, 3], f.dg[:, 2])),
    ("-y (reverse, worst case)", (-f.dg[:, 2],)),
):
    c = f.corpus(rank_score(f.sc, *keys))
    print(f"ties broken by {lab}: {c.normalized:.4f}")
