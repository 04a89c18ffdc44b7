"""Numba kernel of DetectorBank: the per-reading state machine, scalar, in (slot, ts) order.

This is the scalar form of the round-based numpy implementation kept in `reference.py` (the
specification, used by the tests): the same IEEE operations in the same order on the same
per-slot arrays, so the outputs and the state evolution are bit-identical to it. A series'
readings only touch its own slot and are processed strictly in its own order, so processing
the batch reading by reading in (slot, ts) order is the same computation as the rounds.

Rules kept here (each one matters for bit-identity):
- no fastmath, no parallel: no reassociation, no contraction into FMA;
- error_model="numpy": division by zero gives inf/NaN as in numpy (numba's default raises);
- `np.maximum` / `np.minimum` propagate NaN (`_max` / `_min`, from kernel_math), `np.fmax` ignores it (`_fmax`);
- products keep numpy's left-to-right grouping (`a * d * d` is `(a * d) * d`);
- the rolling medians are exact order statistics of the same window: a branch-free three-way
  quickselect (`_select`) instead of a full sort gives the same values, as an order statistic
  does not depend on how it is found (only the sign of a zero could; no score depends on it).

Column indices are passed in (`ci` for the state table, `pc` for the parameter table) so this
module does not depend on the layout definitions.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from urbanpulse.kernel_math import nan_max as _max
from urbanpulse.kernel_math import nan_min as _min

_TINY = 1e-300
_TAIL_FLOOR = 1e-12  # smallest tail (1 - score) the re-arm gate tells apart


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _fmax(a, b):  # np.fmax: NaN loses
    if b != b:
        return a
    if a != a:
        return b
    return a if a > b else b


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _isfinite(a):
    return a - a == 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def _select(src, m, kth, a, b):
    """The kth order statistic of src[:m] (no NaN; as in a sorted copy) and the (kth-1)th (kth
    itself when kth == 0); src is left as it is, a and b are scratch of at least m entries.

    Three-way quickselect, out of place and branch-free: each pass writes every entry to both
    ends of the other buffer and advances the end it belongs to by a comparison, so neither
    mispredicted branches nor store-to-load forwarding stalls dominate, and runs of equal values
    (quantised series, regular gaps) end the search in one pass.
    """
    for j in range(m):
        a[j] = src[j]
    lo = 0
    hi = m
    left_max = -np.inf  # the largest entry known to sort before a[lo:hi] (valid once lo > 0)
    while hi - lo > 4:
        x = a[lo]
        y = a[(lo + hi) >> 1]
        z = a[hi - 1]
        pivot = max(min(x, y), min(max(x, y), z))  # median of three: an entry of the range
        # unsigned indices: no negative-index wraparound code in the hot loop (e >= f >= lo here)
        fu = np.uint64(lo)
        eu = np.uint64(hi - 1)
        for j in range(np.uint64(lo), np.uint64(hi)):
            v = a[j]
            b[fu] = v
            b[eu] = v
            fu += np.uint64(v < pivot)
            eu -= np.uint64(v > pivot)
        f = np.int64(fu)
        e = np.int64(eu)
        # b[lo:f] < pivot, b[e+1:hi] > pivot, the e+1-f entries between equal the pivot
        if kth < f:
            hi = f
        elif kth > e:
            left_max = pivot
            lo = e + 1
        else:
            if kth - 1 >= f or kth == 0:
                return pivot, pivot
            if f > lo:
                p = b[lo]
                for j in range(lo + 1, f):
                    p = max(p, b[j])
                return pivot, p
            return pivot, left_max
        a, b = b, a
    for i in range(lo + 1, hi):  # insertion sort of the rest
        v = a[i]
        j = i - 1
        while j >= lo and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v
    if kth == 0:
        return a[0], a[0]
    return a[kth], (a[kth - 1] if kth - 1 >= lo else left_max)


@njit(cache=True, nogil=True, error_model="numpy")
def _gather(ring_row, window, nc, buf):
    """The ring's newest `window` entries that are not NaN, into buf; returns how many.
    (Order does not matter for order statistics, so ring order is kept.)"""
    R = ring_row.shape[0]
    w = window if window < R else R
    m = 0
    if w >= R:
        for j in range(R):
            v = np.float64(ring_row[j])
            buf[m] = v
            m += np.int64(v == v)
    else:
        for j in range(R):
            age = (nc - 1 - j) % R
            if age < 0:
                age += R
            v = np.float64(ring_row[j])
            buf[m] = v
            m += np.int64((v == v) and (age < w))
    return m


@njit(cache=True, nogil=True, error_model="numpy")
def _n_finite(buf, m):
    k = 0
    for j in range(m):
        k += np.int64(buf[j] - buf[j] == 0.0)
    return k


@njit(cache=True, nogil=True, error_model="numpy")
def _median_k(buf, m, k, W, a, b):
    """median_of_sorted of a window with k finite entries (buf[:m]: its non-NaN entries)."""
    if k == 0:
        return np.nan
    lo = (k - 1) // 2
    hi = k // 2
    if hi > W - 1:
        hi = W - 1
    v_hi, v_prev = _select(buf, m, hi, a, b)
    v_lo = v_hi if lo == hi else v_prev  # lo == hi - 1 otherwise
    return 0.5 * (v_lo + v_hi)


@njit(cache=True, nogil=True, error_model="numpy")
def _median(buf, m, W, a, b):
    """median_of_sorted of a window (W entries, m of them not NaN, in buf[:m])."""
    return _median_k(buf, m, _n_finite(buf, m), W, a, b)


@njit(cache=True, nogil=True, error_model="numpy")
def _refresh(sl, nc, prow, st, values, changes, gaps, ci, pc, g, d, a, b):
    """Rolling medians (values, MAD, |changes|, gaps) of one slot from its rings (scratch g, d, a, b)."""
    W = values.shape[1]
    m = _gather(values[sl], np.int64(prow[pc[0]]), nc, g)  # rz_window
    k = _n_finite(g, m)
    if m > 0:  # lo_min: the smallest entry (sorted first)
        mn = g[0]
        for j in range(1, m):
            mn = min(mn, g[j])
        st[sl, ci[0]] = mn
    else:
        st[sl, ci[0]] = np.nan
    if k > 0:  # lo_q: order statistic k // 20
        st[sl, ci[1]] = _select(g, m, k // 20, a, b)[0]
    else:
        st[sl, ci[1]] = np.nan
    med = _median_k(g, m, k, W, a, b)
    st[sl, ci[2]] = med
    # MAD: |v - med| over the same window (NaN where v is NaN or med is NaN)
    m2 = 0
    for j in range(m):
        dv = abs(g[j] - med)
        d[m2] = dv
        m2 += np.int64(dv == dv)
    st[sl, ci[3]] = _median(d, m2, W, a, b)
    m = _gather(changes[sl], np.int64(prow[pc[1]]), nc, g)  # sp_window
    st[sl, ci[4]] = _median(g, m, changes.shape[1], a, b)
    m = _gather(gaps[sl], np.int64(prow[pc[2]]), nc, g)  # si_window
    k = _n_finite(g, m)
    st[sl, ci[5]] = _median_k(g, m, k, gaps.shape[1], a, b)
    # the 90th percentile gap: how irregular the sampling is (regular series: the median)
    st[sl, ci[6]] = _select(g, m, (9 * (k - 1)) // 10, a, b)[0] if k > 0 else np.nan


@njit(cache=True, nogil=True, error_model="numpy")
def process(s, t, x, last_ts, profile, table, st, values, changes, gaps, C, P, R, out, fused_out,
            refresh_every, eager_refresh):
    """Score readings (already sorted by (slot, ts), skips removed) and update the slots' state.

    C: state column indices, P: parameter column indices (both int64 arrays, see bank._C / _P),
    R: refresh column indices. out [n, 6] detector scores in DETECTOR_NAMES order, fused_out [n].
    """
    n = s.shape[0]
    RV = values.shape[1]
    RC = changes.shape[1]
    RG = gaps.shape[1]
    nbuf = max(RV, RC, RG)
    scr_g = np.empty(nbuf, np.float64)  # scratch of the refreshes
    scr_d = np.empty(nbuf, np.float64)
    scr_a = np.empty(nbuf, np.float64)
    scr_b = np.empty(nbuf, np.float64)
    # state columns
    c_count, c_med, c_mad, c_dscale, c_gap_med, c_ew_m, c_ew_v, c_prev, c_base = C[0], C[1], C[2], C[3], C[4], C[5], C[6], C[7], C[8]
    c_fl_ref, c_fl_run, c_fl_start, c_fl_ok, c_thr_on, c_peak, c_lo_min, c_lo_q = C[9], C[10], C[11], C[12], C[13], C[14], C[15], C[16]
    c_sh_m, c_sh_s, c_sh_n, c_li_n, c_li_s, c_li_m, c_li_v, c_li_peak = C[17], C[18], C[19], C[20], C[21], C[22], C[23], C[24]
    c_sh_sp, c_sh_sn = C[25], C[26]
    c_gap_q, c_fl_max, c_lr_v, c_res, c_ch_v, c_dch = C[27], C[28], C[29], C[30], C[31], C[32]
    # parameter columns
    p_on0 = P[0]  # on_threshold .. on_silence are P[0] + 0..5
    p_w0 = P[1]  # w_threshold .. w_silence are P[1] + 0..5
    p_thr_high, p_thr_low, p_thr_clear_high, p_thr_clear_low = P[2], P[3], P[4], P[5]
    p_rz_threshold, p_rz_min = P[6], P[7]
    p_ew_alpha, p_ew_threshold, p_ew_min, p_sh_alpha, p_sh_threshold, p_sh_decay = P[8], P[9], P[10], P[11], P[12], P[13]
    p_sp_threshold, p_sp_min = P[14], P[15]
    p_fl_min_readings, p_fl_min_duration_us, p_fl_tolerance, p_fl_only_varying = P[16], P[17], P[18], P[19]
    p_si_factor, p_si_interval_us, p_si_min = P[20], P[21], P[22]
    p_fu_decay, p_fu_bump, p_li_w, p_li_rate, p_li_alpha, p_li_thr, p_li_min = P[23], P[24], P[25], P[26], P[27], P[28], P[29]
    p_ls_thr, p_ls_floor = P[33], P[34]
    p_fl_learn, p_fl_decay, p_sp_floor, p_ew_floor, p_lr_rate = P[35], P[36], P[37], P[38], P[39]

    for i in range(n):
        sl = s[i]
        ti = t[i]
        xi = x[i]
        pr = table[profile[sl]]
        cnt = st[sl, c_count]
        last = last_ts[sl]
        has_prev = cnt > 0

        # silence
        gap = np.float64(ti - last) if has_prev else np.nan
        conf = pr[p_si_interval_us]
        if conf != conf:
            # learned: the median gap, stretched by how irregular the gaps are (q90 / median), so
            # an event-driven feed whose gaps of 3x the median are normal is not "silent" there
            g_med = st[sl, c_gap_med]
            g_q = st[sl, c_gap_q]
            learned = g_q * (g_q / g_med) if g_q > g_med else g_med
            expected = learned * 1e6 if cnt >= pr[p_si_min] else np.nan
        else:
            expected = conf
        excess = _max(gap / expected - 1.0, 0.0)
        sil = excess / (excess + (pr[p_si_factor] - 1.0))
        o5 = (sil if _isfinite(sil) else 0.0) * pr[p_on0 + 5]

        # robust_z
        ew_v = st[sl, c_ew_v]
        ew_std = np.sqrt(ew_v)
        med = st[sl, c_med]
        mad = st[sl, c_mad]
        scaled = mad > 0
        # scale floors that do not collapse on quiet stretches: the series' resolution (smallest
        # non-zero change seen) and its long-run spread around the EWMA (slow mean square)
        res = st[sl, c_res]
        lr_std = np.sqrt(st[sl, c_lr_v])
        floor = _fmax(pr[p_ew_floor] * lr_std, res)
        rscale = _fmax(_fmax(_fmax(1.4826 * mad, 0.25 * ew_std), floor), 1e-9 * abs(med) + _TINY)
        z = abs(xi - med) / rscale
        rz = z / (z + pr[p_rz_threshold])
        ok = (cnt >= pr[p_rz_min]) and _isfinite(rz) and scaled
        o1 = (rz if ok else 0.0) * pr[p_on0 + 1]

        # ewma bands and level shift
        ew_m = st[sl, c_ew_m]
        escale = _max(_fmax(ew_std, floor), 1e-9 * abs(ew_m) + _TINY)
        ez = abs(xi - ew_m) / escale
        es = ez / (ez + pr[p_ew_threshold])
        ok = (cnt >= pr[p_ew_min]) and _isfinite(es) and scaled
        if not ok:
            es = 0.0
        sh_a = pr[p_sh_alpha]
        sh_m0 = st[sl, c_sh_m]
        sh_m = sh_m0 + sh_a * (xi - sh_m0) if has_prev else xi
        sh_d = abs(sh_m - med)
        sh_s = st[sl, c_sh_s]
        # where MAD = 0 (quantised, mostly-zero, on/off) the typical distance is floored by the long-run
        # spread, so an on/off series' bursts are its normal excursions and a real change of rate is not
        sh_scale = _fmax(sh_s, 0.05 * 1.4826 * mad) if scaled else _fmax(sh_s, 2.0 * pr[p_ew_floor] * lr_std)
        shq = sh_d / sh_scale
        shs = shq / (shq + pr[p_sh_threshold])
        sh_n = st[sl, c_sh_n]
        warm = sh_n >= _max(pr[p_ew_min], 0.25 / pr[p_sh_decay])
        quiet = (es < 0.5) and (o1 < 0.5)
        if warm and quiet and (sh_s > 0) and _isfinite(shs):  # also where MAD = 0 (quantised series)
            shs = _min(shs, 0.75)
        else:
            shs = 0.0
        o2 = _max(es, shs) * pr[p_on0 + 2]

        # spike
        prev = st[sl, c_prev]
        change = abs(xi - prev)
        back = abs(xi - st[sl, c_base])
        dchange = _min(change, back) if _isfinite(back) else change
        dsc = st[sl, c_dscale]
        # floor: the long-run RMS step (zeros included; a step = a change the next reading kept), so an
        # on/off series' normal switching, rare against the median of its small changes, is not a spike
        ch_rms = np.sqrt(st[sl, c_ch_v])
        dscale = _fmax(_fmax(_fmax(1.4826 * dsc, 0.1 * 1.4826 * mad), _fmax(pr[p_sp_floor] * ch_rms, res)),
                       1e-9 * abs(prev) + _TINY)
        spq = dchange / dscale
        sp = spq / (spq + pr[p_sp_threshold])
        # no non-zero change in the window (a long dry / stuck stretch): the first change is not a spike
        ok = (cnt >= pr[p_sp_min]) and _isfinite(sp) and _isfinite(dsc)
        if not ok:
            sp = 0.0
        o3 = sp * pr[p_on0 + 3]

        # flatline
        tol = pr[p_fl_tolerance]
        fl_ref = st[sl, c_fl_ref]
        # the longest run this series shows normally (decaying memory): a plateau of a periodic
        # series or a slow channel's hold is not a stuck sensor; the decision is at the larger of
        # min_readings and learn_factor x that
        fl_max = st[sl, c_fl_max] * pr[p_fl_decay]
        fl_eff = _max(pr[p_fl_min_readings], pr[p_fl_learn] * fl_max)
        same = has_prev and (abs(xi - fl_ref) <= tol)
        tf = np.float64(ti)
        if same:
            run = st[sl, c_fl_run] + 1.0
            fl_start = st[sl, c_fl_start]
            fl_ok = st[sl, c_fl_ok]
        else:
            prev_run = st[sl, c_fl_run]
            if has_prev and st[sl, c_fl_ok] > 0:  # a counted run ended: learn it (at most 2x the bar)
                fl_max = _max(fl_max, _min(prev_run, 2.0 * fl_eff))
            run = 1.0
            fl_start = tf
            at_floor = (xi >= st[sl, c_lo_min] - tol) and (xi <= st[sl, c_lo_q])
            varying = ((mad > 0) and not at_floor) or (pr[p_fl_only_varying] == 0)
            fl_ok = 1.0 if varying else 0.0
        if run >= 2:
            rq = run - 1.0
            rs = rq / (rq + (fl_eff - 1.0))
            dur = tf - fl_start
            ds = dur / (dur + pr[p_fl_min_duration_us])
        else:
            rs = 0.0
            ds = 0.0
        fs = _max(rs, ds if _isfinite(ds) else 0.0) * fl_ok
        o4 = fs * pr[p_on0 + 4]

        # threshold with hysteresis
        if st[sl, c_thr_on] > 0:
            inside = (not (xi > pr[p_thr_clear_high])) and (not (xi < pr[p_thr_clear_low]))
            now_on = not inside
        else:
            now_on = (xi > pr[p_thr_high]) or (xi < pr[p_thr_low])
        o0 = (1.0 if now_on else 0.0) * pr[p_on0]

        # fused, gated by the decaying peak
        raw = o0 * pr[p_w0]
        v = o1 * pr[p_w0 + 1]
        if v > raw:
            raw = v
        v = o2 * pr[p_w0 + 2]
        if v > raw:
            raw = v
        v = o3 * pr[p_w0 + 3]
        if v > raw:
            raw = v
        v = o4 * pr[p_w0 + 4]
        if v > raw:
            raw = v
        v = o5 * pr[p_w0 + 5]
        if v > raw:
            raw = v
        li_n = st[sl, c_li_n]
        li_m = st[sl, c_li_m]
        li_v = st[sl, c_li_v]
        shuq = sh_d / _fmax(sh_s, _TINY)
        shu = shuq / (shuq + pr[p_sh_threshold])
        if warm and (sh_s > 0) and _isfinite(shu):
            shu = _min(shu, 0.75)
        else:
            shu = 0.0
        # direction-aware: the same distance in units of its typical size on its own side
        sdir = sh_m - med
        sh_sp = st[sl, c_sh_sp]
        sh_sn = st[sl, c_sh_sn]
        ls_thr = pr[p_ls_thr]
        if ls_thr > 0:
            side = sh_sp if sdir > 0 else sh_sn
            dq = sh_d / _fmax(_fmax(side, pr[p_ls_floor] * sh_s), _TINY)
            dsu = dq / (dq + ls_thr)
            if warm and (sh_s > 0) and _isfinite(dsu):
                shu = _max(shu, _min(dsu, 0.75))
        li_in = _max(raw, shu)
        li_s0 = st[sl, c_li_s]
        li_s = li_s0 + pr[p_li_alpha] * (li_in - li_s0) if li_n > 0 else li_in
        li_z = (li_s - li_m) / _max(np.sqrt(li_v), 1e-9 * abs(li_m) + 1e-12)
        lz = _max(li_z, 0.0)
        lis = lz / (lz + pr[p_li_thr])
        if not ((li_n >= pr[p_li_min]) and _isfinite(lis)):
            lis = 0.0
        lis = pr[p_li_w] * lis
        # re-arm gate in tail space (1 - score): the memory of the recent peak is a tail that grows
        # by 1/decay a reading, and a score is emitted only when its tail is below it; after an
        # emission the memory is the score's tail x (1 - bump). So a repeat of the same score needs
        # the same number of readings (half_life x log2(1 / (1 - bump))) however close to 1 it is
        bump = pr[p_fu_bump]
        grow = 1.0 / pr[p_fu_decay]
        t_mem = 1.0 - st[sl, c_peak]
        t_raw = _fmax(1.0 - raw, _TAIL_FLOOR)
        fu = raw if t_raw < t_mem else 0.0
        t_new = t_raw * (1.0 - bump) if fu > 0 else t_raw
        new_peak = 1.0 - _min(_min(t_mem * grow, 1.0), t_new)
        t_li = 1.0 - st[sl, c_li_peak]
        t_lis = _fmax(1.0 - lis, _TAIL_FLOOR)
        li_f = lis if ((t_lis < t_li) and (t_lis < t_mem)) else 0.0
        t_li_new = t_lis * (1.0 - bump) if li_f > 0 else t_lis
        new_li_peak = 1.0 - _min(_min(t_li * grow, 1.0), t_li_new)
        fu = _max(fu, li_f)

        out[i, 0] = o0
        out[i, 1] = o1
        out[i, 2] = o2
        out[i, 3] = o3
        out[i, 4] = o4
        out[i, 5] = o5
        fused_out[i] = fu

        # --- state updates ---
        a = pr[p_ew_alpha]
        d = xi - ew_m
        if cnt >= pr[p_ew_min]:
            lim = 4.0 * ew_std
            d = _min(_max(d, -lim), lim)  # np.clip
        if has_prev:
            new_m = ew_m + a * d
            new_v = (1.0 - a) * (ew_v + a * d * d)
        else:
            new_m = xi
            new_v = 0.0

        # long-run (slow) mean squares: deviation from the EWMA, and change (zeros included);
        # plain means until the memory is full, the deviation winsorised at 6 long-run sigmas
        lr_rate = _max(pr[p_lr_rate], 1.0 / (cnt + 1.0))
        if has_prev:
            dv = xi - ew_m
            lr_v = st[sl, c_lr_v]
            if cnt >= 64:
                lim2 = 36.0 * lr_v
                dv2 = _min(dv * dv, lim2) if lim2 > 0 else dv * dv
            else:
                dv2 = dv * dv
            st[sl, c_lr_v] = lr_v + lr_rate * (dv2 - lr_v)
            # a *step*: the previous change, as far as this reading kept it (a one-reading spike and
            # its return count ~0, an on/off switch counts in full), so repeated spikes are not learned
            step = _min(st[sl, c_dch], back) if _isfinite(back) else 0.0
            st[sl, c_ch_v] = st[sl, c_ch_v] + lr_rate * (step * step - st[sl, c_ch_v])
            if change > 0 and (res == 0 or change < res):
                st[sl, c_res] = change
            st[sl, c_dch] = dchange
        st[sl, c_fl_max] = fl_max

        new_cnt = cnt + 1.0
        cix = np.int64(cnt)
        values[sl, cix % RV] = xi
        changes[sl, cix % RC] = np.float32(change) if (has_prev and change > 0) else np.float32(np.nan)
        gaps[sl, cix % RG] = np.float32(gap / 1e6) if has_prev else np.float32(np.nan)

        st[sl, c_base] = prev if has_prev else np.nan
        st[sl, c_count] = new_cnt
        st[sl, c_ew_m] = new_m
        st[sl, c_ew_v] = new_v
        st[sl, c_prev] = xi
        if not same:
            st[sl, c_fl_ref] = xi
        st[sl, c_fl_run] = run
        st[sl, c_fl_start] = fl_start
        st[sl, c_fl_ok] = fl_ok
        st[sl, c_thr_on] = 1.0 if now_on else 0.0
        st[sl, c_peak] = new_peak
        st[sl, c_sh_m] = sh_m
        dd = sh_d if _isfinite(sh_d) else 0.0
        if sh_s > 0:
            dd = _min(dd, 3.0 * sh_s)
        if has_prev and _isfinite(med):
            rate = _max(pr[p_sh_decay], 1.0 / (sh_n + 1.0))
            st[sl, c_sh_s] = sh_s + rate * (dd - sh_s)
            st[sl, c_sh_n] = sh_n + 1.0
            dp = _max(sdir, 0.0) if _isfinite(sdir) else 0.0
            dn = _max(-sdir, 0.0) if _isfinite(sdir) else 0.0
            if sh_sp > 0:
                dp = _min(dp, 3.0 * sh_sp)
            if sh_sn > 0:
                dn = _min(dn, 3.0 * sh_sn)
            st[sl, c_sh_sp] = sh_sp + rate * (dp - sh_sp)
            st[sl, c_sh_sn] = sh_sn + rate * (dn - sh_sn)

        li_rate = _max(pr[p_li_rate], 1.0 / (li_n + 1.0))
        li_d = li_s - li_m
        st[sl, c_li_m] = li_m + li_rate * li_d
        st[sl, c_li_v] = (1.0 - li_rate) * (li_v + li_rate * li_d * li_d)
        st[sl, c_li_s] = li_s
        st[sl, c_li_n] = li_n + 1.0
        st[sl, c_li_peak] = new_li_peak

        nc = np.int64(new_cnt)
        if nc <= eager_refresh or nc % refresh_every == 0:
            _refresh(sl, nc, pr, st, values, changes, gaps, R, P[30:33], scr_g, scr_d, scr_a, scr_b)
        last_ts[sl] = ti
