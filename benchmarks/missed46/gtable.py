"""missed46 Q4 table: per kind, windows reaching (R, K) on [onset, onset+150] and at the onset row; clean copies
reaching it anywhere after probation; and of main's NAB-missed windows, how many it reaches."""
import pickle, sys
import numpy as np
fams = sys.argv[1].split(",")
R, K = float(sys.argv[2]), float(sys.argv[3])
W = {}
for p in sys.argv[4:]:
    for r in pickle.load(open(p, "rb"))["rows"]:
        W[(r["fam"], r["kind"], r["seed"])] = r
print(f"R {R} K {K}")
print("| kind | windows reaching (at the onset row) | clean copies reaching (after probation) | main's missed windows reached |")
print("|---|---|---|---|")
tot_c = []
for f in fams:
    rs = pickle.load(open(f"/tmp/missed46/g_{f}.pkl", "rb"))
    for kind in dict.fromkeys(r["kind"] for r in rs):
        k = [r for r in rs if r["kind"] == kind]
        win = np.mean([(r["inj_rr_win"] >= R) & (r["inj_nu_win"] >= K) for r in k])
        on = np.mean([(r["inj_rr_on"] >= R) & (r["inj_nu_on"] >= K) for r in k])
        cl = [(r["clean_rr_all"] >= R) & (r["clean_nu_all"] >= K) for r in k]
        tot_c += cl
        m = [r for r in k if (f, kind, r["seed"]) in W and W[(f, kind, r["seed"])]["first"] is None]
        mr = sum((r["inj_rr_win"] >= R) & (r["inj_nu_win"] >= K) for r in m)
        print(f"| {f}:{kind} | {win:.2f} ({on:.2f}) | {np.mean(cl):.2f} | {mr} of {len(m)} |" if W else f"| {f}:{kind} | {win:.2f} ({on:.2f}) | {np.mean(cl):.2f} | |")
print(f"all clean copies: {np.mean(tot_c):.3f} of {len(tot_c)}")
