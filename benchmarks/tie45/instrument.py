# ruff: noqa: E501  (the patch's kernel source lines are string literals, kept whole to read as code)
"""Instrument a copy of the kernel: per row, which stage set the anomaly_score and its unfloored surprise.

Written by tie45 for main 85608b5; missed46 brought it to main after fp45 and drift46 (`_silence_seen`,
`_day_drift`, six more diagnostic columns: the calibrated score, reach's, lane's, period's and the robust level's
emissions and the drift stage's). The patch matches kernel source text, so it must follow the kernel."""

import sys
from pathlib import Path

root = Path(sys.argv[1])
lay = root / "src/urbanpulse/detect/layout.py"
s = lay.read_text()
assert s.count('"dd_done",\n)') == 1
s = s.replace('"dd_done",\n)', '"dd_done",\n    "dg_reach", "dg_lane", "dg_period", "dg_rs", "dg_rc",\n)')
lay.write_text(s)
k = root / "src/urbanpulse/detect/_kernel.py"
s = k.read_text()


def rep(old, new, count=1):
    global s
    assert s.count(old) == count, (old, s.count(old))
    s = s.replace(old, new)


rep(
    'C_LN_PEAK = _S["ln_peak"]  # fp44\n',
    'C_LN_PEAK = _S["ln_peak"]  # fp44\nC_DG_REACH = _S["dg_reach"]\nC_DG_LANE = _S["dg_lane"]\nC_DG_PERIOD = _S["dg_period"]\nC_DG_RS = _S["dg_rs"]\nC_DG_RC = _S["dg_rc"]\n',
)
# _tail's surprise, analytic
rep(
    '@njit(cache=True, nogil=True, error_model="numpy")\ndef _decides(',
    '@njit(cache=True, nogil=True, error_model="numpy")\ndef _ytail(q, pr, n, k, e, stretch):\n'
    "    lam = (k + pr[P_TL_K0]) / (n + pr[P_TL_N0])\n    u = pr[P_TL_U]\n    if q > u:\n"
    "        m = (e + pr[P_TL_E0]) / (k + pr[P_TL_C0])\n        return -math.log(lam) + (stretch * (q - u)) / m\n"
    "    return -math.log(1.0 - (1.0 - lam) * (q / u))\n\n\n"
    '@njit(cache=True, nogil=True, error_model="numpy")\ndef _decides(',
)
# reach: p may underflow; surprise analytically
rep(
    "    p = _min((xr_n + XR_A0) / _max(n_eff, 1.0), 1.0) * (1.0 + (q - 1.0) / b) ** (-a)\n",
    "    p = _min((xr_n + XR_A0) / _max(n_eff, 1.0), 1.0) * (1.0 + (q - 1.0) / b) ** (-a)\n"
    "    st[sl, C_DG_REACH] = -math.log(_min((xr_n + XR_A0) / _max(n_eff, 1.0), 1.0)) + a * math.log(1.0 + (q - 1.0) / b)\n",
)
rep(
    "            out = 1.0 - _fmax(math.exp(-0.5 * z * z), _TAIL_FLOOR)\n            st[sl, C_LC_BAR] = LANE_STEP * z\n",
    "            out = 1.0 - _fmax(math.exp(-0.5 * z * z), _TAIL_FLOOR)\n            st[sl, C_LC_BAR] = LANE_STEP * z\n            st[sl, C_DG_LANE] = 0.5 * z * z\n",
)
rep(
    "            out = 1.0 - _fmax(math.exp(-0.5 * z * z), _TAIL_FLOOR)\n            st[sl, C_CD_BAR] = CD_STEP * z\n",
    "            out = 1.0 - _fmax(math.exp(-0.5 * z * z), _TAIL_FLOOR)\n            st[sl, C_CD_BAR] = CD_STEP * z\n            st[sl, C_DG_LANE] = -(0.5 * z * z)\n",
)
rep(
    "    p = _period_learn(st, sl, tf - last)\n    return 1.0 - _fmax(p, _TAIL_FLOOR) if p < 1.0 else 0.0\n",
    "    p = _period_learn(st, sl, tf - last)\n    st[sl, C_DG_PERIOD] = -math.log(_fmax(p, 1e-300))\n    return 1.0 - _fmax(p, _TAIL_FLOOR) if p < 1.0 else 0.0\n",
)
rep(
    "    if f > 0:\n        f = 1.0 - _fmax(_tail(f / (1.0 - f), pr, 0.0, 0.0, 0.0, 1.0), _TAIL_FLOOR)\n    return f\n",
    "    if f > 0:\n        st[sl, C_DG_RS] = _ytail(f / (1.0 - f), pr, 0.0, 0.0, 0.0, 1.0)\n"
    "        f = 1.0 - _fmax(_tail(f / (1.0 - f), pr, 0.0, 0.0, 0.0, 1.0), _TAIL_FLOOR)\n    return f\n",
)
rep(
    "            fu = 1.0 - _fmax(math.exp(-rc_out), _TAIL_FLOOR)\n",
    "            fu = 1.0 - _fmax(math.exp(-rc_out), _TAIL_FLOOR)\n            st[sl, C_DG_RC] = rc_out\n",
)
# _readings: diagnostics. Before calibrate compute the candidate surprises
rep(
    "        rs_f = _robust_emit(st, sl, pr)\n        cal, cal_sil = _calibrate(",
    "        st[sl, C_DG_REACH] = 0.0\n        st[sl, C_DG_RS] = 0.0\n        st[sl, C_DG_RC] = 0.0\n"
    "        tl_n0 = st[sl, C_TL_N]\n        tl_k0 = st[sl, C_TL_K]\n        tl_e0 = st[sl, C_TL_E]\n"
    "        y_fu = 0.0\n        if fu > 0:\n            q_fu0 = raw / (1.0 - raw) if fu == raw else fu / (1.0 - fu)\n"
    "            y_fu = _min(_ytail(q_fu0, pr, tl_n0, tl_k0, tl_e0, pr[P_DT_STRETCH]), -math.log(_fmax(p_own, 1e-300)))\n"
    "        y_fs = 0.0\n        if fs > 0:\n            y_fs = _min(-math.log(_fmax(1.0 - s_silence_cal * pr[P_W_SILENCE], 1e-300)),"
    " _ytail(fs / (1.0 - fs), pr, tl_n0, tl_k0, tl_e0, pr[P_DT_STRETCH]))\n"
    "        y_li = 0.0\n        if li_f > 0:\n            y_li = _ytail(lis / (1.0 - lis), pr, 0.0, 0.0, 0.0, 1.0)\n"
    "        rs_f = _robust_emit(st, sl, pr)\n        cal, cal_sil = _calibrate(",
)
# after reach is computed in this reading the DG_REACH column was set by _reach_score before we zeroed... fix order: zero at loop top
rep(
    "        med, mad, res, ew_m, ew_std, lr_std, floor, sh_m0, sh_s0 = _scales(st, sl, pr)\n\n        s_silence,",
    "        med, mad, res, ew_m, ew_std, lr_std, floor, sh_m0, sh_s0 = _scales(st, sl, pr)\n"
    "        st[sl, C_DG_REACH] = 0.0\n        st[sl, C_DG_LANE] = 0.0\n        st[sl, C_DG_PERIOD] = 0.0\n\n        s_silence,",
)
rep(
    "        st[sl, C_DG_REACH] = 0.0\n        st[sl, C_DG_RS] = 0.0\n        st[sl, C_DG_RC] = 0.0\n        tl_n0",
    "        st[sl, C_DG_RS] = 0.0\n        st[sl, C_DG_RC] = 0.0\n        tl_n0",
)
# code of the emission
rep(
    "        fused_out[i] = _max(_silence_seen(st, sl, _step_rearm(st, sl, pr, _recalibrate(st, sl, pr, emitted), step),\n                                          sil),  # fp44, fp45\n                            _day_drift(st, season, sl, xi, ti))  # drift46 (score-only)\n",
    "        code = 0.0\n        yy = -1.0\n"
    "        if emitted > 0:\n"
    "            if fu > 0:\n"
    "                cv = 10.0\n"
    "                if fu == s_flatline_fused * pr[P_W_FLATLINE]:\n                    cv = 14.0\n"
    "                if fu == s_spike * pr[P_W_SPIKE]:\n                    cv = 13.0\n"
    "                if fu == s_ewma_fused * pr[P_W_EWMA]:\n                    cv = 12.0\n"
    "                if fu == s_robust_z * pr[P_W_ROBUST_Z]:\n                    cv = 11.0\n"
    "                if fu == s_threshold * pr[P_W_THRESHOLD]:\n                    cv = 15.0\n"
    "                if p_own > 0:\n                    cv += 100.0\n"
    "                if emitted == cal and y_fu > yy:\n                    code = cv\n                    yy = y_fu\n"
    "            if fs > 0 and emitted == cal and y_fs > yy:\n                code = 20.0\n                yy = y_fs\n"
    "            if li_f > 0 and emitted == cal and y_li > yy:\n                code = 30.0\n                yy = y_li\n"
    "            if s_reach > 0 and emitted == s_reach and st[sl, C_DG_REACH] > yy:\n                code = 40.0\n                yy = st[sl, C_DG_REACH]\n"
    "            if s_lane > 0 and emitted == s_lane and abs(st[sl, C_DG_LANE]) > yy:\n                code = 50.0 if st[sl, C_DG_LANE] > 0 else 51.0\n                yy = abs(st[sl, C_DG_LANE])\n"
    "            if s_period > 0 and emitted == s_period and st[sl, C_DG_PERIOD] > yy:\n                code = 60.0\n                yy = st[sl, C_DG_PERIOD]\n"
    "            if rs_f > 0 and emitted == rs_f and st[sl, C_DG_RS] > yy:\n                code = 70.0\n                yy = st[sl, C_DG_RS]\n"
    "            if fl_offer and emitted == e_fl:\n                code = 80.0\n"
    "                yy = _ytail(r_fl / (1.0 - r_fl), pr, 0.0, 0.0, 0.0, pr[P_DT_STRETCH])\n"
    "        rec = _recalibrate(st, sl, pr, emitted)\n"
    "        fo = _silence_seen(st, sl, _step_rearm(st, sl, pr, rec, step), sil)  # fp44\n"
    "        ddv = _day_drift(st, season, sl, xi, ti)\n"
    "        if ddv > fo:\n            code = 90.0\n"
    "        fused_out[i] = _max(fo, ddv)\n"
    "        out[i, 6] = code\n        out[i, 7] = emitted\n        out[i, 8] = yy\n        out[i, 9] = st[sl, C_DG_RC]\n"
    "        out[i, 10] = rec\n        out[i, 11] = 1.0 if step else 0.0\n"
    "        out[i, 12] = cal\n        out[i, 13] = s_reach\n        out[i, 14] = s_lane\n        out[i, 15] = s_period\n"
    "        out[i, 16] = rs_f\n        out[i, 17] = ddv\n",
)
# e_fl may be undefined when not fl_offer
rep(
    "        step = s_lane > 0 and s_lane == emitted and s_lane > cal and s_lane > s_reach  # fp44: lane34's or drop43's\n",
    "        step = s_lane > 0 and s_lane == emitted and s_lane > cal and s_lane > s_reach  # fp44: lane34's or drop43's\n        e_fl = -1.0\n        r_fl = 0.0\n",
)
k.write_text(s)
b = root / "src/urbanpulse/detect/bank.py"
s = b.read_text()
rep("np.zeros((1, len(DETECTOR_NAMES))), np.zeros(1)", "np.zeros((1, len(DETECTOR_NAMES) + 12)), np.zeros(1)")
rep(
    "        out = np.empty((n, len(DETECTOR_NAMES)), np.float64)\n",
    "        out = np.zeros((n, len(DETECTOR_NAMES) + 12), np.float64)\n",
)
rep(
    "        return self._result(order, s, t, x, out, fused, veto)\n",
    "        r = self._result(order, s, t, x, out, fused, veto)\n        r.diag = out[:, 6:].copy()\n        return r\n",
)
b.write_text(s)
print("ok")
