"""late47: a robust CUSUM against the rolling median, judged by the series' own record of completed excursions.

fires(x, ...) -> the rows where it fires (numpy/numba prototype of a score-only stage).
- level / scale: the median and 1.4826 x MAD of the last W readings, refreshed every E (as the kernel's robust level)
  (SCALE=d: 1.4826 x the median |first difference| / sqrt 2 instead);
- z = clip((x - level) / scale, -C, C); S+ = max(0, S+ + z - K), S- = max(0, S- - z - K);
- an excursion is a run of S > 0 on one side; when it ends its peak enters the record (from row T0 on);
- it fires once per excursion where S >= H and S >= R x the record, from row T1 on.
"""
import os

import numba
import numpy as np

W = int(os.environ.get("W", "128"))
E = int(os.environ.get("E", "8"))
SCALE = os.environ.get("SCALE", "m")
RHO_MAX = float(os.environ.get("RHO_MAX", "1.25"))  # the robust level's regime gate (level34); 99: off


@numba.njit(cache=True)
def _run(x, lev, sc, iid, C, K, H, R, T0, T1):
    n = len(x)
    fire = np.zeros(n, np.bool_)
    sp = 0.0
    sm = 0.0
    pkp = 0.0
    pkm = 0.0
    rec = 0.0
    donep = False
    donem = False
    for t in range(n):
        if not (sc[t] > 0) or not np.isfinite(x[t]) or not np.isfinite(lev[t]):
            continue
        z = (x[t] - lev[t]) / sc[t]
        z = min(max(z, -C), C)
        sp = max(0.0, sp + z - K)
        sm = max(0.0, sm - z - K)
        if sp > 0:
            pkp = max(pkp, sp)
        else:
            if t >= T0:
                rec = max(rec, pkp)
            pkp = 0.0
            donep = False
        if sm > 0:
            pkm = max(pkm, sm)
        else:
            if t >= T0:
                rec = max(rec, pkm)
            pkm = 0.0
            donem = False
        if t >= T1 and iid[t]:
            if not donep and sp >= H and sp >= R * rec:
                fire[t] = True
                donep = True
            if not donem and sm >= H and sm >= R * rec:
                fire[t] = True
                donem = True
    return fire


def level_scale(x):
    n = len(x)
    lev = np.full(n, np.nan)
    sc = np.full(n, np.nan)
    iid = np.zeros(n, bool)
    rho_m = np.nan
    cur_l, cur_s = np.nan, np.nan
    for t in range(W, n):
        if (t - W) % E == 0:
            w = x[t - W:t]
            w = w[np.isfinite(w)]
            if len(w) > W // 2:
                cur_l = np.median(w)
                if SCALE == "d":
                    cur_s = 1.4826 * np.median(np.abs(np.diff(w))) / np.sqrt(2)
                else:
                    cur_s = 1.4826 * np.median(np.abs(w - cur_l))
                mad = np.median(np.abs(w - cur_l))
                dsc = np.median(np.abs(np.diff(w)))
                rho = min(1.4142135623730951 * mad / dsc, 4.0) if mad > 0 and dsc > 0 else 4.0
                k = (t - W) / E + 1.0
                rr = min(max(E / 1024.0, 1.0 / k), 1.0)
                rho_m = rho if rho_m != rho_m else rho_m + rr * (rho - rho_m)
        iid[t] = rho_m < RHO_MAX
        lev[t] = cur_l
        sc[t] = cur_s
    return lev, sc, iid


def fires(x, C=2.0, K=1.0, H=12.0, R=2.0, T0=256, T1=1024):
    x = np.asarray(x, float)
    lev, sc, iid = level_scale(x)
    return np.flatnonzero(_run(x, lev, sc, iid, C, K, H, R, T0, T1))


@numba.njit(cache=True)
def _run_spread(x, lev, sc, iid, C, K, H, R, T0, T1):
    """A one-sided CUSUM of min(|z|, C) - K (a spread that grows), with the same record and emission rule."""
    n = len(x)
    fire = np.zeros(n, np.bool_)
    s = 0.0
    pk = 0.0
    rec = 0.0
    done = False
    for t in range(n):
        if not (sc[t] > 0) or not np.isfinite(x[t]) or not np.isfinite(lev[t]):
            continue
        u = min(abs(x[t] - lev[t]) / sc[t], C)
        s = max(0.0, s + u - K)
        if s > 0:
            pk = max(pk, s)
        else:
            if t >= T0:
                rec = max(rec, pk)
            pk = 0.0
            done = False
        if t >= T1 and iid[t] and not done and s >= H and s >= R * rec:
            fire[t] = True
            done = True
    return fire


def fires_spread(x, C=3.0, K=1.5, H=12.0, R=2.0, T0=256, T1=1024):
    x = np.asarray(x, float)
    lev, sc, iid = level_scale(x)
    return np.flatnonzero(_run_spread(x, lev, sc, iid, C, K, H, R, T0, T1))
