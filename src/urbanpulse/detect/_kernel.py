"""Numba kernel of DetectorBank: the per-reading state machine, scalar, in (slot, ts) order.

The tests run this function's own Python source (numba's `py_func`, tests/detect_reference.py)
beside the compiled kernel and require bit-identical outputs and state, so the compiled code
computes exactly what the source says. A series' readings only touch its own slot and are
processed strictly in its own order, so the output does not depend on how a stream is batched.

Rules kept here (each one matters for bit-identity):
- no fastmath, no parallel: no reassociation, no contraction into FMA;
- error_model="numpy": division by zero gives inf/NaN as in numpy (numba's default raises);
- `np.maximum` / `np.minimum` propagate NaN (`_max` / `_min`, from kernel_math), `np.fmax` ignores it (`_fmax`);
- products keep numpy's left-to-right grouping (`a * d * d` is `(a * d) * d`);
- the rolling medians are exact order statistics of the same window: a branch-free three-way
  quickselect (`_select`) instead of a full sort gives the same values, as an order statistic
  does not depend on how it is found (only the sign of a zero could; no score depends on it).

Columns are named constants from `layout.py` (`st[sl, C_EW_V]`, `pr[P_EW_ALPHA]`). One function per
detector (`_silence`, `_robust_z`, `_ewma`, `_spike`, `_flatline`, `_threshold`) and per shared stage
(`_scales`, `_fuse`, the likelihood's inputs and `_likelihood`, `_rearm`, `_veto`, `_calibrate`,
`_recalibrate`, `_learn_series`, `_refresh`), each saying which columns it reads and writes; `process`
(its loop, `_readings`) calls them in order for each reading. A detector scores the reading against its
slot's state as it was before the reading, then learns it: it writes only its own columns, which no
later stage of the same reading reads (what several read, e.g. the EWMA's level, is passed along).

The value ring is float32 *offsets* from a per-slot float64 base (`C_VBASE`), not the values: half
the bytes of the largest per-series array, without float32's loss on large values (a 1.2 million
kWh counter in float32 keeps steps of 0.125, so its 0.1 steps would vanish). An entry x is stored
as float32(x - base) and read as base + that; its error is at most |x - base| x 2^-24. The base is
the slot's first value, and at a refresh it moves to the window's median (the entries re-encoded)
when that has drifted from it by more than `REBASE_RES` times the series' resolution (its smallest
non-zero change): so an entry near the median is within 2^-10 of a step of its value, whatever
its magnitude (the counter's 0.1 steps are kept to ~1e-4). The encoding is monotone and equal
values encode equally under one base, so order and ties, which the medians and a MAD of exactly
0 depend on, are kept. Offsets beyond float32's range (3.4e38) read as +-inf.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from urbanpulse.detect.layout import COL as _COL
from urbanpulse.detect.layout import S as _S
from urbanpulse.detect.layout import SE as _SE
from urbanpulse.detect.layout import SEASON_BINS as _SEASON_BINS
from urbanpulse.detect.layout import SC_A0, SC_C0, SI_C0, SI_CAP, SI_CAP_GAPS, SI_CAP_N, SI_WINSOR, SI_Z  # noqa: F401
from urbanpulse.detect.layout import SI_REPEAT, SI_SEEN, SI_USUAL  # noqa: F401
from urbanpulse.detect.layout import (RS_CAP, RS_LEVEL_FLOOR, RS_PK_FLOOR_LEVEL, RS_PK_FLOOR_SPREAD,  # noqa: F401
                                      RS_PK_HALF, RS_RATE, RS_SPREAD_FLOOR, RS_START, RS_THR, RS_TYP_RATE,
                                      RS_WINSOR, RS_RHO_MAX, RS_RHO_RATE, RS_RHO_CAP, RS_REARM_GROW,
                                      RQ_RHO_MAX, RQ_RATE, RQ_MIN_N, RQ_CLIP, RQ_LEVEL_PER_US,
                                      RQ_LEVEL_MAX, RS_HOLD_MIN, RS_HOLD_N, RS_HOLD_X,
                                      RS_HOLD_RESID)
from urbanpulse.detect.layout import VETO_BIT as _VETO_BIT
from urbanpulse.detect.layout import XR_A0, XR_C0, XR_M0, XR_RES, XR_STEPS  # noqa: F401
from urbanpulse.detect.layout import XR_JUMP, XR_JUMP_CALM, XR_JUMP_W, XR_TB  # noqa: F401
from urbanpulse.detect.layout import XE_AGE, XE_END, XE_FIRED, XE_H, XE_K, XE_M, XE_QUIET  # noqa: F401
from urbanpulse.detect.layout import XE_KQ, XE_M_US, XE_QUIET_US  # noqa: F401
from urbanpulse.detect.layout import BF_A0, BF_N0, BF_OWN, BF_PMAX, BF_RUN, BF_X  # noqa: F401
from urbanpulse.detect.layout import BO_C0, BO_HOLD, BO_M0, BO_MARGIN, BO_MIN, BO_Q0, BO_RUN, BO_X  # noqa: F401
from urbanpulse.detect.layout import (PE_AGREE, PE_DWELL, PE_DWELL_GAPS, PE_K, PE_LEVEL_MEM,  # noqa: F401
                                      PE_MAD_SD, PE_MEM, PE_MIN_LOG, PE_MIN_N, PE_RUN, PE_SD_FLOOR, PE_SD_MAX, PE_Z,
                                      PE_ZCAP)
from urbanpulse.kernel_math import nan_max as _max
from urbanpulse.kernel_math import nan_min as _min

_TINY = 1e-300

# named columns (numba freezes module-level ints at compile time): C_* state, P_* parameters
C_COUNT = _S["count"]
C_MED = _S["med"]
C_MAD = _S["mad"]
C_DSCALE = _S["dscale"]
C_DSCALE_N = _S["dscale_n"]
C_DSCALE_LR = _S["dscale_lr"]
C_CHG_RMS_LR = _S["chg_rms_lr"]
C_AC_M = _S["ac_m"]
C_AC_V = _S["ac_v"]
C_GAP_MED = _S["gap_med"]
C_EW_M = _S["ew_m"]
C_EW_V = _S["ew_v"]
C_PREV = _S["prev"]
C_BASE = _S["base"]
C_FL_REF = _S["fl_ref"]
C_FL_RUN = _S["fl_run"]
C_FL_START = _S["fl_start"]
C_FL_OK = _S["fl_ok"]
C_THR_ON = _S["thr_on"]
C_PEAK = _S["peak"]
C_LO_MIN = _S["lo_min"]
C_LO_Q = _S["lo_q"]
C_SH_M = _S["sh_m"]
C_SH_S = _S["sh_s"]
C_SH_N = _S["sh_n"]
C_LI_N = _S["li_n"]
C_LI_S = _S["li_s"]
C_LI_M = _S["li_m"]
C_LI_V = _S["li_v"]
C_LI_PEAK = _S["li_peak"]
C_SH_SP = _S["sh_sp"]
C_SH_SN = _S["sh_sn"]
C_GAP_SPREAD = _S["gap_spread"]
C_FL_MAX = _S["fl_max"]
C_LR_V = _S["lr_v"]
C_RES = _S["res"]
C_CH_V = _S["ch_v"]
C_ENV_HI = _S["env_hi"]
C_ENV_LO = _S["env_lo"]
C_DCH = _S["dch"]
P_ON_THRESHOLD = _COL["on_threshold"]
P_ON_ROBUST_Z = _COL["on_robust_z"]
P_ON_EWMA = _COL["on_ewma"]
P_ON_SPIKE = _COL["on_spike"]
P_ON_FLATLINE = _COL["on_flatline"]
P_ON_SILENCE = _COL["on_silence"]
P_W_THRESHOLD = _COL["w_threshold"]
P_W_ROBUST_Z = _COL["w_robust_z"]
P_W_EWMA = _COL["w_ewma"]
P_W_SPIKE = _COL["w_spike"]
P_W_FLATLINE = _COL["w_flatline"]
P_W_SILENCE = _COL["w_silence"]
P_THR_HIGH = _COL["thr_high"]
P_THR_LOW = _COL["thr_low"]
P_THR_CLEAR_HIGH = _COL["thr_clear_high"]
P_THR_CLEAR_LOW = _COL["thr_clear_low"]
P_RZ_THRESHOLD = _COL["rz_threshold"]
P_RZ_MIN = _COL["rz_min"]
P_EW_ALPHA = _COL["ew_alpha"]
P_EW_THRESHOLD = _COL["ew_threshold"]
P_EW_MIN = _COL["ew_min"]
P_SH_ALPHA = _COL["sh_alpha"]
P_SH_THRESHOLD = _COL["sh_threshold"]
P_SH_DECAY = _COL["sh_decay"]
P_SP_THRESHOLD = _COL["sp_threshold"]
P_SP_MIN = _COL["sp_min"]
P_FL_MIN_READINGS = _COL["fl_min_readings"]
P_FL_MIN_DURATION_US = _COL["fl_min_duration_us"]
P_FL_TOLERANCE = _COL["fl_tolerance"]
P_FL_ONLY_VARYING = _COL["fl_only_varying"]
P_SI_FACTOR = _COL["si_factor"]
P_SI_INTERVAL_US = _COL["si_interval_us"]
P_SI_MIN = _COL["si_min"]
P_FU_DECAY = _COL["fu_decay"]
P_FU_BUMP = _COL["fu_bump"]
P_LI_W = _COL["li_w"]
P_LI_RATE = _COL["li_rate"]
P_LI_ALPHA = _COL["li_alpha"]
P_LI_THR = _COL["li_thr"]
P_LI_MIN = _COL["li_min"]
P_LS_THR = _COL["ls_thr"]
P_LS_FLOOR = _COL["ls_floor"]
P_FL_LEARN = _COL["fl_learn"]
P_FL_DECAY = _COL["fl_decay"]
P_SP_FLOOR = _COL["sp_floor"]
P_EW_FLOOR = _COL["ew_floor"]
P_LR_RATE = _COL["lr_rate"]
P_SI_IRREGULARITY = _COL["si_irregularity"]
P_RZ_WINDOW = _COL["rz_window"]
P_SP_WINDOW = _COL["sp_window"]
P_SI_WINDOW = _COL["si_window"]
C_TL_N = _S["tl_n"]
C_TL_K = _S["tl_k"]
C_TL_E = _S["tl_e"]
C_VBASE = _S["vbase"]
C_NZ_S = _S["nz_s"]
C_NZ_L = _S["nz_l"]
P_TL_U = _COL["tl_u"]
P_TL_DECAY = _COL["tl_decay"]
P_TL_N0 = _COL["tl_n0"]
P_TL_K0 = _COL["tl_k0"]
P_TL_E0 = _COL["tl_e0"]
P_TL_C0 = _COL["tl_c0"]
P_AL_TAIL = _COL["al_tail"]
P_NZ_THR = _COL["nz_thr"]
P_NZ_RATE = _COL["nz_rate"]
C_TR_S1 = _S["tr_s1"]
C_TR_S2 = _S["tr_s2"]
C_TR_M = _S["tr_m"]
C_TR_VM = _S["tr_vm"]
C_TR_VE = _S["tr_ve"]
P_TR_THR = _COL["tr_thr"]
P_TR_ALPHA = _COL["tr_alpha"]
P_TR_RATE = _COL["tr_rate"]
P_TR_SLOPE = _COL["tr_slope"]
P_TR_W = _COL["tr_w"]
C_RC_N = _S["rc_n"]
C_RC_K = _S["rc_k"]
C_RC_E = _S["rc_e"]
P_RC_Y0 = _COL["rc_y0"]
P_RC_DECAY = _COL["rc_decay"]
P_RC_N0 = _COL["rc_n0"]
P_RC_K0 = _COL["rc_k0"]
P_RC_E0 = _COL["rc_e0"]
P_DT_STRETCH = _COL["dt_stretch"]
P_ENV_K = _COL["env_k"]
P_ENV_G = _COL["env_g"]
P_ENV_MIN = _COL["env_min"]
P_ENV_DECAY = _COL["env_decay"]
C_SE_L = _S["se_l"]
C_SE_T0 = _S["se_t0"]
SE_M = _SE["m"]
SE_VE = _SE["ve"]
SE_VM = _SE["vm"]
SE_N = _SE["n"]
C_SE_WK = _S["se_wk"]  # road33: the weekly judgement (layout.py)
C_SE_LS = _S["se_ls"]
SE_W0 = _SE["w0"]  # road33: the weekend profile's bins start here (SEASON_BINS of them)
SE_S0 = _SE["s0"]  # road33: the weekday bins as the first judged Saturday found them
SE_SVE = _SE["sve"]
SE_SVM = _SE["svm"]
SE_SN = _SE["sn"]
SE_WO = _SE["wo"]
SE_WC = _SE["wc"]
SE_WF = _SE["wf"]
SE_WFC = _SE["wfc"]
SE_WS = _SE["ws"]
SE_WSC = _SE["wsc"]
SE_WSW = _SE["wsw"]
SE_WM = _SE["wm"]
SE_WMC = _SE["wmc"]
SE_WMW = _SE["wmw"]
P_SE_THR = _COL["se_thr"]
P_SE_PER_US = _COL["se_per_us"]
P_SE_GAMMA = _COL["se_gamma"]
P_SE_AMP = _COL["se_amp"]
C_SI_N = _S["si_n"]
C_SI_K = _S["si_k"]
C_SI_E = _S["si_e"]
C_SI_MAX = _S["si_max"]
C_SI_REP = _S["si_rep"]
C_SI_PEAK = _S["si_peak"]
P_SI_LNP = _COL["si_lnp"]
P_SI_DECAY = _COL["si_decay"]
P_SI_N0 = _COL["si_n0"]
P_SI_M0 = _COL["si_m0"]
C_CR_P = _S["cr_p"]
C_CR_S = _S["cr_s"]
P_CR_THR = _COL["cr_thr"]
C_RM_SLOW = _S["rm_slow"]
C_RM_TYP = _S["rm_typ"]
C_RD_SLOW = _S["rd_slow"]
C_RD_TYP = _S["rd_typ"]
C_RS_S = _S["rs_s"]
C_RM_PK = _S["rm_pk"]
C_RD_PK = _S["rd_pk"]
C_RS_PEAK = _S["rs_peak"]
C_RS_RHO = _S["rs_rho"]
C_RS_HOLD = _S["rs_hold"]
P_CR_LNK = _COL["cr_lnk"]
P_CR_KM1 = _COL["cr_km1"]
# reach33: the readings' own range and reach's own tail (`_reach`, `_reach_score`)
C_XR_HI = _S["xr_hi"]
C_XR_LO = _S["xr_lo"]
C_XR_N = _S["xr_n"]
C_XR_E = _S["xr_e"]
C_XR_T = _S["xr_t"]
C_XR_J = _S["xr_j"]  # traffic36
C_XR_TB = _S["xr_tb"]  # spike37
C_XR_X = _S["xr_x"]  # spike37
C_XE_A = _S["xe_a"]  # exit40
C_XE_N = _S["xe_n"]  # exit40
C_XE_T = _S["xe_t"]  # exit41
C_XE_PT = _S["xe_pt"]  # gecco43
C_XE_DP = _S["xe_dp"]  # gecco43
C_FL_TOP = _S["fl_top"]  # leak43
C_FL_TOP_N = _S["fl_top_n"]
C_LN_PEAK = _S["ln_peak"]  # fp44
C_SI_SEEN = _S["si_seen"]  # fp45
C_PE_L = _S["pe_l"]  # period42
C_PE_A = _S["pe_a"]
C_PE_S = _S["pe_s"]
C_PE_TF = _S["pe_tf"]
C_PE_TU = _S["pe_tu"]
C_PE_TD = _S["pe_td"]
C_PE_N = _S["pe_n"]
C_PE_M = _S["pe_m"]
C_PE_V = _S["pe_v"]
C_PE_R = _S["pe_r"]
C_PE_RY = _S["pe_ry"]
C_LC_M = _S["lc_m"]  # lane34 (layout.py)
C_LC_V = _S["lc_v"]
C_LC_N = _S["lc_n"]
C_LC_BAR = _S["lc_bar"]
C_CD_NO = _S["cd_no"]  # drop43 (layout.py)
C_CD_T0 = _S["cd_t0"]
C_CD_A = _S["cd_a"]
C_CD_B = _S["cd_b"]
C_CD_V = _S["cd_v"]
C_CD_BAR = _S["cd_bar"]
C_RQ_SLOW = _S["rq_slow"]  # level36 (layout.py)
C_RQ_TYP = _S["rq_typ"]
C_RQ_PK = _S["rq_pk"]
C_RQ_A = _S["rq_a"]
C_RQ_D = _S["rq_d"]
C_RQ_E = _S["rq_e"]
C_RQ_L = _S["rq_l"]
P_XR_THR = _COL["xr_thr"]
# burstfp34: the series' own bursts (`_burst_rate`)
C_BF_K = _S["bf_k"]
C_BF_R = _S["bf_r"]
# first36: the series' own burst onsets (`_burst_onset`)
C_BO_K = _S["bo_k"]
C_BO_E = _S["bo_e"]
C_BO_MAX = _S["bo_max"]
C_BO_Q = _S["bo_q"]
C_BO_R = _S["bo_r"]
C_BO_D = _S["bo_d"]
C_BO_H = _S["bo_h"]
C_BO_DMAX = _S["bo_dmax"]
C_FL_ALL = _S["fl_all"]  # gecco39
P_XR_MIN = _COL["xr_min"]
SEASON_BINS = _SEASON_BINS
DAY_US = 86_400_000_000
BIN_US = DAY_US // _SEASON_BINS
HALF_BIN_US = BIN_US // 2
PER_BIN_US = 1.0 / BIN_US  # (products, not quotients, on every reading: a float division costs ~4 products)
# the phase in unsigned arithmetic where the time is after the epoch's first half bin (every real reading): a quotient
# and a remainder by a constant are then a product and a shift, without the floor correction of a signed one, and
# the bins' indices need no negative wrap-around (numba adds one to every signed index); the same values
U_BIN_US = np.uint64(BIN_US)
U_SEASON_BINS = np.uint64(_SEASON_BINS)
U_ONE = np.uint64(1)
U_ZERO = np.uint64(0)
SEASON_START_US = 1.25 * DAY_US  # the seasonal input is scored from this age of the series on (a day and a quarter)
SEASON_CAP = 0.95  # the seasonal score's largest value (its z separates a changed day well: not capped as the trend's)
SEASON_N_MAX = 1e6  # the seasonal table's count stops here (exact in float32; its rate is then the long-run one)
# road33: the week (UTC calendar). 1970-01-01 was a Thursday: (days since the epoch + 3) % 7 is 0 on Mondays, 5 on
# Saturdays, 6 on Sundays
U_SE_W0 = np.uint64(SE_W0)
U_SE_S0 = np.uint64(SE_S0)
U_SE_L0 = np.uint64(_SE["l0"])
U_WEEK = np.uint64(7)
U_DOW0 = np.uint64(3)
U_SAT = np.uint64(5)
U_SUN = np.uint64(6)
U_FRI = np.uint64(4)
U_MON = np.uint64(0)
U_JUDGE_BINS = np.uint64(3)  # a Saturday is judged from a reading in its first this many bins (hours) on
WEEKLY_K = 4.0  # a series is weekly where its first judged Saturday's mean squared residual against the weekday
# profile is over this x the weekdays' (a road's Saturday misses every rush hour: 10-100x; an ordinary day ~1x)
WEEKLY_AMP_X = 0.5  # a weekly series' amplitude gate is this x likelihood_season_min_amplitude
WEEKLY_K2 = 2.0  # ... and whose Sunday the Saturday's profile predicts with a mean squared residual this x below the
# weekdays' profile's (a road's weekend is one kind of day twice; a weather front on a Saturday does not repeat so)
# ... and whose Monday the weekday profile as the Saturday found it predicts with a mean squared residual this x
# below that weekend's profile's (not a series that changed on the Saturday and stayed changed)
# lane34: a sustained departure from the series' own expected value (`_lane`): the seasonal residual's slow mean
# (rate LANE_RATE a reading, ~4 h at 5 minutes) in units of its own long-run RMS (learned from the series' second day
# at the long-run rate, winsorised at LANE_WINSOR of it), scored from LANE_START_US of age and LANE_MIN_N readings
# learned, where z reaches the bar: LANE_Z, then LANE_STEP x the last emission's z until z falls below LANE_RESET
LANE_RATE = 1.0 / 48.0
LANE_Z = 4.0
LANE_STEP = 1.25
LANE_RESET = 2.0
LANE_WINSOR = 9.0
LANE_START_US = 2 * DAY_US
LANE_MIN_N = 256.0
LANE_ANY_SEASONAL = False
LANE_BIN_RATE = 1.0 / 64.0  # an hour's mean square learns at this rate a reading in that hour (~5 days at 5 minutes)
LANE_FLOOR = 0.25  # an hour's mean square is at least this x the all-day one (a few days of an hour are few values)
# lane35: while the weekly judgement is pending (road33's `se_wk` below 2: a third of the generated roads, those on a
# clock 4-8 hours west of UTC above all, are not judged weekly on their first weekend), a departure is scored against
# the one daily profile Tuesday to Friday (UTC: not the weekend the daily profile mispredicts, nor the Monday after
# it) on a series whose last tallied weekend shows a week, more weakly than road33's judgement asks (`_week_pending`)
LANE_PENDING = True
LANE_SAT_K = 2.0  # ... its Saturday's mean squared residual over this x the weekdays' (road33's judgement: WEEKLY_K)
JUDGE_US = 28 * DAY_US  # weekends are judged until the series is this old
# drop43: a count series that loses part of its events (`_count_drop`): the slow sums' rate a microsecond of gap (a
# 2-hour memory) and at most a reading, the hourly profile's share of a pass (as likelihood_season_gamma's default),
# the bar, its step and reset (lane34's), the hour's mean square's floor (x the all-day one) and rate a reading of
# that hour (~5 days at 5 minutes), and the series' age before it scores (a profile of two days)
U_CD_P0 = np.uint64(_SE["c0"])
U_CD_V0 = np.uint64(_SE["d0"])
U_TUE = np.uint64(1)
U_THU = np.uint64(3)
CD_RATE_PER_US = 1.0 / (2.0 * 3.6e9)
CD_RATE_MAX = 0.25
CD_GAMMA = 0.2
CD_Z = 4.0
CD_STEP = 1.25
CD_RESET = 2.0
CD_FLOOR = 0.25
CD_BIN_RATE = 1.0 / 64.0
CD_WINSOR = 9.0
CD_START_US = 2 * DAY_US
WEEKLY_MIN = 16.0  # ... from at least this many readings of that Saturday (else: not weekly)
V_ROBUST_Z = _VETO_BIT["robust_z"]
V_EWMA = _VETO_BIT["ewma"]
SLOW_REFRESH = 4
GAP_SPREAD_RATE = 0.25  # silence: weight of a refresh's window in the learned gap spread (q90 - median)
# spike where its window holds few non-zero changes: a window of at least DSCALE_LR_MIN of them teaches two long-run
# memories (`dscale_lr`: spike's scale there, `chg_rms_lr`: the RMS of the non-zero changes); a window with none
# judges the first change against the RMS memory; a window of fewer whose robust scale is over DSCALE_LR_RATIO x the
# scale memory (its few changes are an on/off series' switches, not its usual changes) moves toward that memory
DSCALE_LR_MIN = 8
DSCALE_LR_RATIO = 4.0
# ewma's active level of an on/off series (`_active_level`): a reading is active where its excursion above the
# window's floor is over ACTIVE_SPLIT x the learned one; the learned excursion and its typical spread follow the
# active readings at ACTIVE_RATE (the spread starts at ACTIVE_V0 x the first excursion, so nothing is scored until
# some 1 / ACTIVE_RATE active readings have shrunk it); scored where the learned excursion is over ACTIVE_SEP x its
# spread (one level: on/off, not a periodic or trending series) and over FLOOR_MODE_Z x the window's robust scale
# and robust change scale
ACTIVE_SPLIT = 0.5
ACTIVE_RATE = 1.0 / 32.0
ACTIVE_V0 = 0.25
ACTIVE_SEP = 8.0
FLOOR_MODE_Z = 6.0  # ewma level shift: a floor atom this many typical changes below the median is an idle mode (on/off)
#: the value ring's base moves to the median once they are this many resolutions apart (2^14: an
#: entry's float32 error stays below 2^-10 of the series' smallest step, plus 2^-24 of its distance
#: from the median); rarely, as a re-encoded entry can differ in its last bit from the same value
#: encoded afresh, which would break a tie (a MAD of exactly 0 is a decision in the detectors)
REBASE_RES = 16384.0
_TAIL_FLOOR = 1e-12  # smallest tail (1 - score) the re-arm gate tells apart

# drift46: a slow drift against yesterday (`_day_drift`, score-only)
C_DD_BIN = _S["dd_bin"]
C_DD_S = _S["dd_s"]
C_DD_C = _S["dd_c"]
C_DD_DAY = _S["dd_day"]
C_DD_MC = _S["dd_mc"]
C_DD_MP = _S["dd_mp"]
C_DD_BASE = _S["dd_base"]
C_DD_MAD = _S["dd_mad"]
C_DD_NM = _S["dd_nm"]
C_DD_ND = _S["dd_nd"]
C_DD_M = _S["dd_m"]
C_DD_LV = _S["dd_lv"]
C_DD_V = _S["dd_v"]
C_DD_NV = _S["dd_nv"]
C_DD_DP = _S["dd_dp"]
C_DD_DV = _S["dd_dv"]
C_DD_NDV = _S["dd_ndv"]
C_DD_Z = _S["dd_z"]
C_DD_SM = _S["dd_sm"]
C_DD_NZ = _S["dd_nz"]
C_DD_REC = _S["dd_rec"]
C_DD_R0 = _S["dd_r0"]
C_DD_DONE = _S["dd_done"]
DD_BINS = 2 * _SEASON_BINS  # 30-minute bins of the UTC day
DD_BIN_US = DAY_US // DD_BINS
U_DD_BIN_US = np.uint64(DD_BIN_US)
U_DD_BINS = np.uint64(DD_BINS)
U_DD_Y0 = np.uint64(_SE["y0"])
DD_SHORT = 2.0  # bins of D's short mean (an EWMA)
DD_SLOW = 24.0  # bins of D's slow level
DD_MIN_D = 8.0  # D's learned into the RMS before z is scored
DD_FREEZE = 3.0  # the RMS (and D's change's) is not learned while z is above this
DD_RMS_N = 200.0  # the RMS's memory (D's), a plain mean until then
DD_DV_N = 24.0  # the memory of D's bin-to-bin change's mean square (D's)
DD_CLIP = 3.0  # a reading is winsorised at yesterday's bin mean +- this x the mean |departure| from it
DD_MAD_N = 512.0  # the winsorising scale's memory (readings)
DD_WEEK_LO = 36.0  # hours after Monday 00:00 UTC from which a completed bin is compared with yesterday's (Tue 12:00)
DD_WEEK_HI = 108.0  # ... and before which (Fri 12:00): both days of the pair a local weekday from UTC-12 to UTC+12
DD_LAG = 5  # the record is the largest z of the D's before the last DD_LAG (dd_r0..dd_r4)
DD_WARM = 256.0  # readings scored with z > 0 before the stage may emit
DD_RATIO = 2.5  # an emission: z at least this x the record ...
DD_SMOOTH = 3.0  # ... and |D's short mean - slow level| at least this x the RMS of D's bin-to-bin change
DD_EMIT = 0.99999  # the emission's anomaly_score (once a series)
DD_RES_X = 0.1  # D's RMS and its change's are at least this x the series' resolution: a noise-free series (a rounded
# sine repeating every day) departs from yesterday only by the winsorising's rounding, which is no departure
DD_SHIFT_US = 100_000 * 7 * DAY_US  # whole weeks added to the time (unsigned, the weekday kept: a series may cross
# the epoch, `_season_input` says why); readings before that (~1,900 years before the epoch) are not scored
TREND_CAP = 0.5
# flatline in the fusion: a run's score counts there until it first reaches FL_FUSE_ONCE (9 x the bar), then not
# for the rest of the run (its decision, so the alert, stays on): a stuck value's score rises once, and is not
# re-emitted ever higher every few dozen readings for as long as it holds; benchmarks/README.md, det28b
FL_FUSE_ONCE = 0.9
# leak43: a cap (`_cap_hold`) is a top of reach's range that runs of readings began at again FL_TOP_VISITS times, each
# reached by a step of at most FL_TOP_STEP x spike's robust scale of changes (not by a jump: a runaway pinned at once,
# a sensor stuck at a spike's value), while that top had risen within FL_TOP_RECENT readings (a ramp's arrival, not a
# road's speed at the cap it holds every night, nor a sensor stuck once at a new top)
FL_TOP_STEP = 3.0
FL_TOP_RECENT = 1024.0
FL_TOP_VISITS = 3.0
# flatline on an on/off series whose window is idle (MAD 0): a run at its active level (ewma's `_active_level`)
# counts from FL_ACTIVE_MIN readings on, once the active level is one level (ACTIVE_SEP); before, or where it is
# not, such a run is learned as the series' normal (its bursts' longest hold) but not counted
FL_ACTIVE_MIN = 1024.0
ENVELOPE_CAP = 0.75  # envelope: its score is capped here (as the level shift's), in the decision and the fusion
RZ_LAG_G = 2.0  # robust_z: the fast level this many robust scales from the median = the window lags (`_robust_z`)
RZ_LAG_K = 4.0  # ... and at most this many of its typical distances from it (a lag the series shows normally)
# count rate (`_count_rate`): the series' long-run onset rate is tested as at most its estimate plus COUNT_UCB standard
# errors (and one onset in its memory), so a rate learned from few onsets, low by chance, is not a change; where the
# CUSUM reaches its threshold it jumps to COUNT_CAP x it and is held there at most (one decision that lasts while the
# rate stays up, not one per onset; a long change is not remembered for ever: it ends once the rate is back)
COUNT_UCB = 2.0
COUNT_CAP = 3.0


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
def _tail(q, pr, n, k, e, stretch):
    """P(Q >= q) of the slot's fused statistic: above the level u an exponential tail with the
    series' exceedance rate and mean excess (decayed counts n, k, e plus the prior), its excess
    in mean-excess units multiplied by `stretch`; below it a straight line from 1 at q = 0 to the
    rate at u. Continuous at u, in [0, 1], non-increasing in q for any stretch > 0.

    stretch 1 is the fitted tail itself (decisions always use it, and so does the likelihood's prior
    tail); the emitted detector score passes `fusion.detector_tail_stretch` (DETECTOR_TAIL_STRETCH, 1):
    below 1 the tail falls more slowly, so a detector's far statistic scores a little lower beside the
    likelihood's. As P_stretched = rate^(1 - s) x P^s <= P^s, a decision (P <= alert_tail) then carries
    a score of at least 1 - alert_tail^s, no longer 1 - alert_tail (benchmarks/README.md, det18 / det19).
    s x 1.0 == s, so stretch 1 is the plain tail bit for bit."""
    lam = (k + pr[P_TL_K0]) / (n + pr[P_TL_N0])
    u = pr[P_TL_U]
    if q > u:
        m = (e + pr[P_TL_E0]) / (k + pr[P_TL_C0])
        return lam * math.exp(-(stretch * (q - u)) / m)
    return 1.0 - (1.0 - lam) * (q / u)


@njit(cache=True, nogil=True, error_model="numpy")
def _decides(r, alert_tail, pr, n, k, e):
    """A detector's weighted score r at its decision level is rare enough for this series to decide:
    P(Q >= r / (1 - r)) under the slot's fitted tail (unstretched: the emitted score's shape never
    changes a decision) is at most alert_tail (always where alert_tail >= 1)."""
    if alert_tail >= 1.0:
        return True
    return _tail(r / (1.0 - r), pr, n, k, e, 1.0) <= alert_tail


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _partition(src, dst, lo, hi, pivot):
    """One three-way pass of `_select`: src[lo:hi] into dst[lo:hi], the entries below `pivot` from lo up, those
    above it from hi - 1 down (each entry is written to both ends, and the end it belongs to advances by a
    comparison: no branch to mispredict); returns (f, e): dst[lo:f] < pivot, dst[e+1:hi] > pivot, the e+1-f
    entries between equal to it."""
    # unsigned indices: no negative-index wraparound code in the hot loop (e >= f >= lo here)
    fu = np.uint64(lo)
    eu = np.uint64(hi - 1)
    for j in range(np.uint64(lo), np.uint64(hi)):
        v = src[j]
        dst[fu] = v
        dst[eu] = v
        fu += np.uint64(v < pivot)
        eu -= np.uint64(v > pivot)
    return np.int64(fu), np.int64(eu)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _below_into(src, dst, m, pivot):
    """perf43: `_partition`'s lower side alone: src[:m]'s entries below `pivot` into dst from 0 up, in input order
    (one store and one comparison an entry, not two)."""
    fu = np.uint64(0)
    for j in range(np.uint64(m)):
        v = src[j]
        dst[fu] = v
        fu += np.uint64(v < pivot)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _above_into(src, dst, m, pivot):
    """perf43: `_partition`'s upper side alone: src[:m]'s entries above `pivot` into dst from m - 1 down, in input
    order."""
    eu = np.uint64(m - 1)
    for j in range(np.uint64(m)):
        v = src[j]
        dst[eu] = v
        eu -= np.uint64(v > pivot)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _max_of(buf, lo, hi, left):
    """The largest of buf[lo:hi] and `left` (-inf: none): what sorts just below buf[lo:hi]'s successors."""
    p = left
    for j in range(lo, hi):
        p = max(p, buf[j])
    return p


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _entry_equal(guess):
    """The bits of an entry that compares equal to `guess`, in a range without -0.0 (a partition pass leaves
    no copy of the entries equal to its pivot): the guess itself, +0.0 for a zero (the guess may be -0.0)."""
    return guess if guess != 0.0 else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def _select(src, m, kth, a, b, guess):
    """The kth order statistic of src[:m] (no NaN; as in a sorted copy) and the (kth-1)th (kth
    itself when kth == 0); src is left as it is, a and b are scratch of at least m entries.

    Three-way quickselect, out of place and branch-free: each pass writes every entry to both
    ends of the other buffer and advances the end it belongs to by a comparison, so neither
    mispredicted branches nor store-to-load forwarding stalls dominate, and runs of equal values
    (quantised series, regular gaps) end the search in one pass.

    perf42: the first pass reads src itself (the same partition a copy of it gave). A finite `guess` (the same
    statistic at the slot's last refresh, a window 8 readings older) is the first pass's pivot in place of the
    median of three: the kth entry is then within a few ranks of the partition's boundary, and the passes after it
    (median of three) work on about half the window, not all of it (~2.75 m entries read -> ~2 m; the selects
    were ~30 % of the detectors' time). The values are those of a sorted copy whatever the pivots, and so are
    their bits provided no entry is -0.0 (entries that compare equal are then one bit pattern; the guess itself,
    which need not be an entry, is never returned): the caller passes a guess only where src cannot hold -0.0, and
    NaN elsewhere (median-of-three pivots throughout: the former search, pass for pass).

    perf43: with a guess, the entries below and above it are counted first (a loop without stores, which LLVM
    vectorises: ~1/6 of a partition pass); where the kth (and the (kth-1)th) entry equals the guess, as it mostly
    does on a quantised or mostly-zero series, that is the answer the first pass would have returned (its f and e
    are these counts) and no pass runs; elsewhere the search goes on as before.
    """
    n_below = 0
    n_above = 0
    if m > 4 and guess - guess == 0.0:
        for j in range(m):
            v = src[j]
            n_below += np.int64(v < guess)
            n_above += np.int64(v > guess)
        if n_below <= kth <= m - 1 - n_above and (kth - 1 >= n_below or kth == 0):
            v = _entry_equal(guess)
            return v, v
    lo = 0
    hi = m
    left_max = -np.inf  # the largest entry known to sort before cur[lo:hi] (valid once lo > 0)
    left_hi = 0  # ... or, after a first pass around a guess that no entry equals, the largest of a[0:left_hi]
    cur = src  # the buffer holding the range a pass reads; dst the one it writes
    dst = a
    if m <= 4:  # no pass: the insertion sort below sorts a copy
        for j in range(m):
            a[j] = src[j]
        cur = a
    first = True
    if m > 4 and guess - guess == 0.0 and (kth < n_below or kth > m - 1 - n_above >= n_below):
        # perf43: the counts say which side of the guess the kth entry is on; where the first pass's state after it
        # needs only that side (below; above, some entry equal to the guess), only that side is written, as the
        # partition writes it (a[0:f] in input order; a[e+1:m] from the top down), and the search goes on from there
        if kth < n_below:
            _below_into(src, a, m, guess)
            hi = n_below
        else:
            _above_into(src, a, m, guess)
            lo = m - n_above
            left_max = _entry_equal(guess)
        cur = a
        dst = b
        first = False
    while hi - lo > 4:
        guessed = first and guess - guess == 0.0
        if guessed:
            pivot = guess
        else:
            x = cur[lo]
            y = cur[(lo + hi) >> 1]
            z = cur[hi - 1]
            pivot = max(min(x, y), min(max(x, y), z))  # median of three: an entry of the range
        f, e = _partition(cur, dst, lo, hi, pivot)
        if kth < f:
            hi = f
        elif kth > e:
            if not guessed:
                left_max = pivot
                left_hi = 0
            elif e >= f:
                left_max = _entry_equal(pivot)
            else:
                left_hi = f  # no entry equals the guess: the largest below it, found only if it is asked for
            lo = e + 1
        else:
            v = _entry_equal(pivot) if guessed else pivot  # the kth entry
            if kth - 1 >= f or kth == 0:
                return v, v
            if f > lo:
                return v, _max_of(dst, lo + 1, f, dst[lo])
            return v, (_max_of(a, 0, left_hi, -np.inf) if left_hi > 0 else left_max)
        # the next pass reads what this one wrote and writes the other scratch buffer (never src)
        nxt = b if first else cur
        cur = dst
        dst = nxt
        first = False
    for i in range(lo + 1, hi):  # insertion sort of the rest
        v = cur[i]
        j = i - 1
        while j >= lo and cur[j] > v:
            cur[j + 1] = cur[j]
            j -= 1
        cur[j + 1] = v
    if kth == 0:
        return cur[0], cur[0]
    if kth - 1 >= lo:
        return cur[kth], cur[kth - 1]
    return cur[kth], (_max_of(a, 0, left_hi, -np.inf) if left_hi > 0 else left_max)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _pack(buf, n):
    """perf43: buf[:n]'s entries that are not NaN moved to its front, in order; returns how many. The gathers write
    every entry to its own place first (a loop without a carried store index, which LLVM vectorises) and pack only
    where one was NaN: the same entries in the same order as writing each to buf[m] and counting m (the former loop,
    ~2 x slower where no entry is NaN, the usual full window)."""
    m = 0
    for j in range(n):
        v = buf[j]
        buf[m] = v
        m += np.int64(v == v)
    return m


@njit(cache=True, nogil=True, error_model="numpy")
def _gather(ring_row, window, nc, buf):
    """The ring's newest `window` entries that are not NaN, into buf; returns how many, and how many of them are
    finite (`_n_finite` of them, counted in the same pass). (Order does not matter for order statistics, so ring
    order is kept.)"""
    R = ring_row.shape[0]
    w = window if window < R else R
    m = 0
    k = 0
    if w >= R:  # perf43: every entry to its own place (a loop LLVM vectorises), then packed only if one was NaN
        for j in range(R):
            v = np.float64(ring_row[j])
            buf[j] = v
            m += np.int64(v == v)
            k += np.int64(v - v == 0.0)
        if m < R:
            m = _pack(buf, R)
    else:
        for j in range(R):
            age = (nc - 1 - j) % R
            if age < 0:
                age += R
            v = np.float64(ring_row[j])
            buf[m] = v
            m += np.int64((v == v) and (age < w))
            k += np.int64((v - v == 0.0) and (age < w))
    return m, k


@njit(cache=True, nogil=True, error_model="numpy")
def _gather_values(ring_row, base, window, nc, buf):
    """`_gather` of the value ring: its newest `window` entries that are not NaN, decoded (base +
    the float32 offset), into buf; returns how many, and how many of them are finite."""
    R = ring_row.shape[0]
    w = window if window < R else R
    m = 0
    k = 0
    if w >= R:  # perf43: as `_gather`'s
        for j in range(R):
            v = base + np.float64(ring_row[j])
            buf[j] = v
            m += np.int64(v == v)
            k += np.int64(v - v == 0.0)
        if m < R:
            m = _pack(buf, R)
    else:
        for j in range(R):
            age = (nc - 1 - j) % R
            if age < 0:
                age += R
            v = base + np.float64(ring_row[j])
            buf[m] = v
            m += np.int64((v == v) and (age < w))
            k += np.int64((v - v == 0.0) and (age < w))
    return m, k


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _no_negative_zero(base):
    """Whether a value ring decoded from `base` holds no -0.0: base + offset is -0.0 only where both are -0.0
    (round to nearest: x + -x is +0.0), so only where the base is -0.0 (a series whose first value was -0.0)."""
    return not (base == 0.0 and math.copysign(1.0, base) < 0.0)


@njit(cache=True, nogil=True, error_model="numpy")
def _rebase(row, base, new_base):
    """Re-encode a value ring's offsets from `base` to `new_base` (NaN entries, empty, stay NaN)."""
    for j in range(row.shape[0]):
        v = row[j]
        if v == v:
            row[j] = np.float32((base + np.float64(v)) - new_base)


@njit(cache=True, nogil=True, error_model="numpy")
def _n_finite(buf, m):
    k = 0
    for j in range(m):
        k += np.int64(buf[j] - buf[j] == 0.0)
    return k


@njit(cache=True, nogil=True, error_model="numpy")
def _median_k(buf, m, k, W, a, b, guess):
    """median_of_sorted of a window with k finite entries (buf[:m]: its non-NaN entries); `guess`: `_select`'s."""
    if k == 0:
        return np.nan
    lo = (k - 1) // 2
    hi = k // 2
    if hi > W - 1:
        hi = W - 1
    v_hi, v_prev = _select(buf, m, hi, a, b, guess)
    v_lo = v_hi if lo == hi else v_prev  # lo == hi - 1 otherwise
    return 0.5 * (v_lo + v_hi)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _beyond_peak(st, sl, col, q, pk_decay, floor):
    """A distance `q` (in typical distances) scored beyond the decayed memory of its own peak in column `col`
    (level34: r = q / max(peak, floor) - 1 scores r / (r + RS_THR) where positive, else 0), and the memory raised to
    q. Why: a level or spread change then scores as it grows past what the series has already shown, not again at
    every refresh while it merely holds (shift37's hold stretches that). Shared by level34's level and spread scores
    (`_robust_refresh`) and level36's residual level (`_resid_level`)."""
    pk = st[sl, col] * pk_decay
    r = q / _fmax(pk, floor) - 1.0
    st[sl, col] = _max(pk, q)
    return r / (r + RS_THR) if r > 0 else 0.0


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _resid_level(st, sl, pk_decay, refresh_every):
    """level36 (resid35's idea): level34's level score on the level of the series less its daily profile
    (`_resid_regime`, a ~2 h memory, robust to bursts: a level shift moves it within hours, the day does not), at a
    refresh: its distance from its slow memory (RS_RATE a reading) in units of its typical distance (RS_TYP_RATE,
    winsorised at RS_WINSOR; learned at every refresh: level36's V3-V5a learned it only off a scored distance, and on
    a trending series the slow memory's growing lag then grew the distance without bound)
    floored at RS_LEVEL_FLOOR x the residual's scale (1.4826 x its median |residual|, `_resid_regime`),
    scored beyond RS_PK_FLOOR_LEVEL typical distances as level34's. Learned from the profile's second day on (the
    lane's count of residuals, C_LC_N). Returns the score, or -1 where the residual wanders far beyond its noise
    (sqrt(2) x its median |residual| over its median |change| at least RQ_RHO_MAX: level36 1.6, resid35 1.25) or has
    learned fewer than RQ_MIN_N residuals.

    Reads and writes C_RQ_SLOW, C_RQ_TYP, C_RQ_PK; reads C_RQ_L, C_LC_N, C_RQ_A, C_RQ_D."""
    ln = st[sl, C_LC_N]
    lv = st[sl, C_RQ_L]
    if not (ln > 0 and _isfinite(lv)):
        return -1.0
    ra = st[sl, C_RQ_A]
    rd = st[sl, C_RQ_D]
    score = 0.0
    ls = st[sl, C_RQ_SLOW]
    if ls != ls:
        st[sl, C_RQ_SLOW] = lv
        st[sl, C_RQ_TYP] = 0.0
    else:
        k = ln / refresh_every + 1.0
        rate = _min(_max(RS_RATE * refresh_every, 1.0 / k), 1.0)
        trate = _min(_max(RS_TYP_RATE * refresh_every, 1.0 / k), 1.0)
        d = abs(lv - ls)
        typ = st[sl, C_RQ_TYP]
        sc = _fmax(typ, RS_LEVEL_FLOOR * 1.4826 * ra)
        if sc > 0:
            score = _beyond_peak(st, sl, C_RQ_PK, d / sc, pk_decay, RS_PK_FLOOR_LEVEL)
            st[sl, C_RQ_TYP] = typ + trate * (_min(d, RS_WINSOR * sc) - typ)
        st[sl, C_RQ_SLOW] = ls + rate * (lv - ls)
    if ln < RQ_MIN_N or not (rd > 0) or 1.4142135623730951 * ra >= RQ_RHO_MAX * rd:
        return -1.0
    return score


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _robust_refresh(sl, nc, prow, st, med, mad, dsc, refresh_every):
    """The robust level and spread score (shift33), at a refresh (its inputs move only there): the window's median
    against its slow memory, in units of its typical distance from it (at least RS_LEVEL_FLOOR x 1.4826 MAD), and
    the window's median |change| over its slow memory, less 1, in units of its typical relative distance (at least
    RS_SPREAD_FLOOR; increases only); each scored q / (q + RS_THR), the larger capped at RS_CAP, from RS_START
    readings on, and stored for the readings up to the next refresh (`_robust_emit`). Then learns the memories (an
    EWMA at RS_RATE a reading) and the typical distances (RS_TYP_RATE, winsorised at RS_WINSOR of them), from a full
    window on; a plain mean at first. A normal burst of a few readings hardly moves either median, so neither scale
    is inflated by it as ewma's level-shift distance and the likelihood's RMS change are (fam30, mechanism 2).

    Scored only where the series is i.i.d.-like noise around a level (level34): the regime memory (an EWMA of
    sqrt(2) MAD / median |change|, ~1 there, >> 1 for an AR(1), a cycle within the window or an on/off series) is
    below RS_RHO_MAX; elsewhere the medians' distances have a heavier tail than their typical distance says (shift33:
    the default families' temperature and on/off clean copies reached the injected server copies' values).

    Reads and writes C_RM_SLOW, C_RM_TYP, C_RD_SLOW, C_RD_TYP, C_RM_PK, C_RD_PK, C_RS_RHO, C_RS_HOLD; writes C_RS_S;
    reads P_RZ_WINDOW, C_AC_M, C_AC_V, C_RES, C_SE_WK."""
    since = nc - prow[P_RZ_WINDOW]
    if since < 0:
        return
    k = since / refresh_every + 1.0
    rate = _min(_max(RS_RATE * refresh_every, 1.0 / k), 1.0)
    trate = _min(_max(RS_TYP_RATE * refresh_every, 1.0 / k), 1.0)
    pk_decay = 0.5 ** (refresh_every / RS_PK_HALF)
    score = 0.0
    spread = 0.0
    if _isfinite(med) and mad > 0:
        ls = st[sl, C_RM_SLOW]
        if ls != ls:
            st[sl, C_RM_SLOW] = med
            st[sl, C_RM_TYP] = 0.0
        else:
            d = abs(med - ls)
            typ = st[sl, C_RM_TYP]
            sc = _fmax(typ, RS_LEVEL_FLOOR * 1.4826 * mad)
            q = d / sc
            if _isfinite(q):
                score = _beyond_peak(st, sl, C_RM_PK, q, pk_decay, RS_PK_FLOOR_LEVEL)
            st[sl, C_RM_TYP] = typ + trate * (_min(d, RS_WINSOR * sc) - typ)
            st[sl, C_RM_SLOW] = ls + rate * (med - ls)
    if _isfinite(dsc) and dsc > 0:
        ds = st[sl, C_RD_SLOW]
        if ds != ds:
            st[sl, C_RD_SLOW] = dsc
            st[sl, C_RD_TYP] = 0.0
        else:
            rr = dsc / ds - 1.0
            typ = st[sl, C_RD_TYP]
            sc = _fmax(typ, RS_SPREAD_FLOOR)
            if rr > 0 and _isfinite(rr):
                spread = _beyond_peak(st, sl, C_RD_PK, rr / sc, pk_decay, RS_PK_FLOOR_SPREAD)
            else:
                st[sl, C_RD_PK] = st[sl, C_RD_PK] * pk_decay
            st[sl, C_RD_TYP] = typ + trate * (_min(abs(rr), RS_WINSOR * sc) - typ)
            st[sl, C_RD_SLOW] = ds + rate * (dsc - ds)
    # not on an on/off series (ewma's active level is one level far above the idle noise, `_active_level`): its
    # window's median and median |change| flip with the share of bursts in it
    ac_m = st[sl, C_AC_M]
    onoff = (ac_m > ACTIVE_SEP * _fmax(st[sl, C_AC_V], st[sl, C_RES])
             and ac_m > FLOOR_MODE_Z * 1.4826 * _fmax(mad, dsc))
    # only where the series is i.i.d.-like noise around a level (level34): there sqrt(2) MAD ~ the median |change|
    # (both ~ 0.67 sigma sqrt(2)), and the medians' distances are what the scales say; an AR(1), a cycle within the
    # window or an on/off series has MAD >> the changes' scale. Judged by its memory (learned after the score: a
    # shift in the window inflates this window's MAD)
    rho_m = st[sl, C_RS_RHO]
    iid = rho_m == rho_m and rho_m < RS_RHO_MAX
    # (a window without spread or without changes, a quantised count's zeros, is no such regime: the cap)
    rho = RS_RHO_CAP
    if mad > 0 and dsc > 0 and _isfinite(mad) and _isfinite(dsc):
        rho = _min(1.4142135623730951 * mad / dsc, RS_RHO_CAP)
    if rho_m != rho_m:
        st[sl, C_RS_RHO] = rho
    else:
        rrate = _min(_max(RS_RHO_RATE * refresh_every, 1.0 / k), 1.0)
        st[sl, C_RS_RHO] = rho_m + rrate * (rho - rho_m)
    resid = _resid_level(st, sl, pk_decay, refresh_every)
    out = 0.0
    if nc >= RS_START and not onoff:
        if iid:
            out = _max(score, spread)
        elif resid >= 0:  # level36: a daily cycle shut the series out; scored on what its profile leaves
            out = _max(resid, spread)
    st[sl, C_RS_S] = _min(out, RS_CAP)
    # shift37: how long the score has held RS_HOLD_MIN (refreshes come every refresh_every readings once eager ones
    # end).
    # hold38: on level36's residual path the hold counts at RS_HOLD_RESID of that pace, and not at all while a road's
    # first weekend is judged (road33's se_wk 1: that Saturday is not in the profile yet, so its residual departs for
    # hours on a clean road)
    held = out >= RS_HOLD_MIN and (iid or st[sl, C_SE_WK] != 1.0)
    pace = refresh_every if iid else RS_HOLD_RESID * refresh_every
    st[sl, C_RS_HOLD] = st[sl, C_RS_HOLD] + pace if held else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def _refresh(sl, nc, prow, st, values, changes, gaps, g, d, a, b, slow, refresh_every):
    """Rolling medians (values, MAD, |changes|) of one slot from its rings (scratch g, d, a, b); with
    `slow` also the statistics that move slowly: the window's floor (minimum, 5 % quantile, for
    flatline) and the median and q90 gap (silence)."""
    W = values.shape[1]
    base = st[sl, C_VBASE]
    m, k = _gather_values(values[sl], base, np.int64(prow[P_RZ_WINDOW]), nc, g)  # rz_window
    if slow:
        if m > 0:  # lo_min: the smallest entry (sorted first)
            mn = g[0]
            for j in range(1, m):
                mn = min(mn, g[j])
            st[sl, C_LO_MIN] = mn
        else:
            st[sl, C_LO_MIN] = np.nan
        if k > 0:  # lo_q: order statistic k // 20 (perf43: its last value the guess, as the median's below)
            st[sl, C_LO_Q] = _select(g, m, k // 20, a, b, st[sl, C_LO_Q] if _no_negative_zero(base) else np.nan)[0]
        else:
            st[sl, C_LO_Q] = np.nan
    # the last refresh's statistics guide the searches (`_select`); the values' only where no entry can be -0.0
    med = _median_k(g, m, k, W, a, b, st[sl, C_MED] if _no_negative_zero(base) else np.nan)
    st[sl, C_MED] = med
    # MAD: |v - med| over the same window (NaN where v is NaN or med is NaN)
    m2 = 0
    k2 = 0  # of them finite (`_n_finite`, counted here)
    for j in range(m):  # perf43: each to its own place (vectorised), packed only if one is NaN (as `_gather`)
        dv = abs(g[j] - med)
        d[j] = dv
        m2 += np.int64(dv == dv)
        k2 += np.int64(dv - dv == 0.0)
    if m2 < m:
        m2 = _pack(d, m)
    mad = _median_k(d, m2, k2, W, a, b, st[sl, C_MAD])  # |.|: no -0.0
    st[sl, C_MAD] = mad
    res = st[sl, C_RES]
    if res > 0 and _isfinite(med) and abs(med - base) > REBASE_RES * res:  # drifted: offsets from the median
        _rebase(values[sl], base, med)
        st[sl, C_VBASE] = med
    m, k = _gather(changes[sl], np.int64(prow[P_SP_WINDOW]), nc, g)  # sp_window
    dsc = _median_k(g, m, k, changes.shape[1], a, b, st[sl, C_DSCALE])  # changes > 0 only
    st[sl, C_DSCALE] = dsc
    st[sl, C_DSCALE_N] = k
    # how many non-zero changes this window's median has, and two long-run memories learned on windows of at least
    # DSCALE_LR_MIN of them (a fast mean at first, then the long-run rate; not blended while the series idles, so
    # they do not decay as the RMS step does over an idle stretch): spike's scale there (the larger of the robust
    # scale and the RMS-step floor) and the RMS of the non-zero changes (an on/off series' switches included)
    if k >= DSCALE_LR_MIN:
        rate = _min(_max(prow[P_LR_RATE] * refresh_every, refresh_every / nc), 1.0)
        cur = _fmax(1.4826 * dsc, prow[P_SP_FLOOR] * np.sqrt(st[sl, C_CH_V]))
        lr = st[sl, C_DSCALE_LR]
        st[sl, C_DSCALE_LR] = cur if lr != lr else lr + rate * (cur - lr)
        ss = 0.0
        for j in range(m):
            c = g[j]
            if c - c == 0.0:
                ss += c * c
        cur = np.sqrt(ss / k)
        lr = st[sl, C_CHG_RMS_LR]
        st[sl, C_CHG_RMS_LR] = cur if lr != lr else lr + rate * (cur - lr)
    _robust_refresh(sl, nc, prow, st, med, mad, dsc, refresh_every)
    if slow:
        m, k = _gather(gaps[sl], np.int64(prow[P_SI_WINDOW]), nc, g)  # si_window
        g_med = _median_k(g, m, k, gaps.shape[1], a, b, np.nan)
        st[sl, C_GAP_MED] = g_med
        # the gaps' spread: q90 gap - median gap (a regular series, even one with a few missed readings: 0;
        # exponential inter-arrivals: 1.6 x the mean gap), blended into the learned spread at GAP_SPREAD_RATE a
        # refresh but never below this window's: many windows' gaps, not 32, so a window of short gaps by
        # chance does not make a rare long gap "silent"
        if k > 0 and g_med == g_med:
            spread = _select(g, m, (9 * (k - 1)) // 10, a, b, np.nan)[0] - g_med
            prev = st[sl, C_GAP_SPREAD]
            st[sl, C_GAP_SPREAD] = spread if prev != prev else _max(spread, prev + GAP_SPREAD_RATE * (spread - prev))


# --- the per-reading stages, in the order `_readings` (process's loop) calls them ---------------------
# Each detector scores the reading against its slot's state *before* the reading and then learns it
# (writes its own columns); no stage reads a column that an earlier stage of the same reading wrote,
# so every stage sees the state before the reading, as a single pass would. tests/detect_reference.py
# runs their Python source (`STAGES`) beside the compiled kernel.
#
# Each is inlined into the loop over readings (`_readings`) by Numba (`inline="always"`), and that loop is
# compiled without Numba's reference counting (`_nrt=False`; it makes no array, `process` allocates its
# scratch): with reference counting, every array argument of every stage costs an atomic increment and
# decrement a reading (Numba does not prune them across the stages' branches; the kernel ran at 0.66 x
# its speed as one function), and as plain calls LLVM leaves the larger stages out of line (0.91 x).
# benchmarks/README.md (det22) has the figures.
_STAGE = dict(cache=True, nogil=True, error_model="numpy", inline="always")
#: a stage's rare path (period42): compiled on its own, called, not inlined into the loop over readings
_RARE = dict(cache=True, nogil=True, error_model="numpy")


@njit(**_STAGE)
def _scales(st, sl, pr):
    """The scales several detectors share, as they stood before this reading: the window's rolling median and
    MAD (kept by the refreshes), the series' resolution (its smallest non-zero change), the EWMA's level and
    standard deviation, the long-run RMS deviation from the EWMA, and the floor of robust_z's and ewma's scales
    (`ew_floor` x that long-run RMS, at least the resolution: it does not collapse on quiet stretches); and ewma's
    fast level (the shift EWMA) and its typical distance from the median, which robust_z, the envelope and ewma read
    (loaded once: no stage before ewma writes them).

    Reads C_MED, C_MAD, C_RES, C_EW_M, C_EW_V, C_LR_V, C_SH_M, C_SH_S; P_EW_FLOOR. Writes nothing.
    Returns (med, mad, res, ew_m, ew_std, lr_std, floor, sh_m, sh_s)."""
    ew_std = np.sqrt(st[sl, C_EW_V])
    med = st[sl, C_MED]
    mad = st[sl, C_MAD]
    res = st[sl, C_RES]
    lr_std = np.sqrt(st[sl, C_LR_V])
    floor = _fmax(pr[P_EW_FLOOR] * lr_std, res)
    return med, mad, res, st[sl, C_EW_M], ew_std, lr_std, floor, st[sl, C_SH_M], st[sl, C_SH_S]


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _silence_decision(sil, gap, conf, si_rep):
    """silence's statistic for its decision (rep41): `sil`, but SI_USUAL (just below the decision) on a learned
    interval's gap no longer than SI_REPEAT x the longest the series has shown (`si_rep`, seconds): an operator does
    not want an alert because a sensor skipped one to three readings again, as it has before. The statistic itself
    (the likelihood's input, the tail fit, the emitted score) is left as it is: only the alert changes."""
    if sil >= 0.5 and conf != conf and gap <= SI_REPEAT * 1e6 * si_rep:
        return SI_USUAL
    return sil


@njit(**_STAGE)
def _silence(st, sl, pr, ti, last, cnt, has_prev):
    """silence: the gap since the slot's previous reading against the expected interval, the configured one or
    else the learned one (the median gap plus `irregularity` x the gaps' spread, once `min_readings` are seen);
    the score rises from 0 at the expected gap to 0.5 at `factor` x it.

    The learned interval also knows how often the series' gaps are long (rarity, gap31): a series that misses runs
    of readings now and then (a road sensor's link drops, a scraper restarts) has long gaps that are its normal. The
    gaps of at least `factor` median gaps are fitted an exponential tail in median-gap units (decayed counts of the
    gaps, of the long ones and of their excess over `factor`, winsorised, plus a prior of `si_n0` gaps none long and
    SI_C0 long ones of excess `si_m0`): P(gap > q medians) = rate x exp(-(q - factor) / mean excess). A gap is then
    silent only from the length whose tail probability is `rarity` (p): q* = factor + mean excess x ln(rate / p),
    or the interval above where that is longer, but at most SI_CAP x the longest gap the series has shown that was
    not silent (decaying): a regular series (rate 0) is unchanged; a dead source, a gap far beyond anything the
    series has shown, is still silent (also where the gaps' q90 is itself a long gap, which stretches the interval
    above to hours) and is not learned as usual. Worked out only for a long gap once SI_Z^2 long gaps are counted
    (no logarithm on the common path); the configured interval (`expected_interval_s`, the registry's) stays strict.

    Its emitted score (silcal32) is calibrated apart from its decision: 1 - the posterior-predictive probability of a
    gap at least this long under the same counts (layout.SC_A0's comment), worked out only where the gap is beyond
    the expected interval (score > 0). So among a series' gaps, and across series, the score ranks a gap by how rare
    it is for that series (a fifth 40-minute gap on a road sensor below its first on a series that never missed a
    reading, a dead source near 1), while the decision (score >= 0.5) and everything learned from the score (the
    likelihood's input, the tail fit) are as before. Monotone in the gap for a given state.

    The gaps the series has shown (rep41): on a learned interval a gap no longer than SI_REPEAT x the longest gap the
    series has shown (`si_rep`, decaying; a silent gap counts as `factor` median gaps if a short run, none if an
    outage) is not decided
    (`_silence_decision`): a 5-minute sensor that skips one to three readings now and then is not alerted on its next
    run of two or three, while a series that never missed a reading is judged as before and a dropout well beyond
    its gaps (9+ slots where runs of missed readings reach 3) still is. Decisions only: the statistic (the
    likelihood's input via `raw_s`, the tail fit, the emission, the rarity's counts) is as before.

    Reads C_GAP_MED, C_GAP_SPREAD (kept by the refreshes), C_SI_N, C_SI_K, C_SI_E, C_SI_MAX, C_SI_REP;
    P_SI_INTERVAL_US, P_SI_IRREGULARITY, P_SI_MIN, P_SI_FACTOR, P_ON_SILENCE, P_SI_LNP, P_SI_DECAY, P_SI_N0, P_SI_M0.
    Writes C_SI_N, C_SI_K, C_SI_E, C_SI_MAX, C_SI_REP (the gap ring: `_learn_series`).
    Returns (the decision's score, gap in µs, NaN on the slot's first reading; the calibrated score, 0 where the
    statistic is 0; the statistic)."""
    gap = np.float64(ti - last) if has_prev else np.nan
    conf = pr[P_SI_INTERVAL_US]
    factor = pr[P_SI_FACTOR]
    med_us = st[sl, C_GAP_MED] * 1e6
    si_n = st[sl, C_SI_N]
    si_k = st[sl, C_SI_K]
    si_e = st[sl, C_SI_E]
    m_now = (si_e + pr[P_SI_M0] * SI_C0) / (si_k + SI_C0)
    if conf != conf:
        # learned: the median gap plus `irregularity` x the gaps' spread (0 on a regular series), so a
        # gap that an event-driven feed's exponential inter-arrivals produce now and then is not "silent"
        g_spread = st[sl, C_GAP_SPREAD]
        learned = st[sl, C_GAP_MED] + (pr[P_SI_IRREGULARITY] * g_spread if g_spread > 0 else 0.0)
        expected = learned * 1e6 if cnt >= pr[P_SI_MIN] else np.nan
    else:
        expected = conf
    long_gap = gap >= factor * med_us  # (False where the median is not known yet)
    judged = False  # the rarity judged this gap (else every long gap is learned as usual: the longest's memory)
    if long_gap and conf != conf and si_k > SI_Z * SI_Z:
        # a long gap where enough long gaps are known (their count less SI_Z standard errors is > 0): silent from
        # the tail's q* (at least `factor`: long gaps rarer than p change nothing) or the learned interval, the
        # larger, but at most SI_CAP x the longest usual gap (a dead source on a series whose q90 gap is long)
        judged = True
        k_lo = si_k - SI_Z * np.sqrt(si_k)
        ln_ratio = math.log(k_lo / (si_n + pr[P_SI_N0])) - pr[P_SI_LNP]
        q_rare = factor + m_now * ln_ratio if ln_ratio > 0 else factor
        expected = _max(expected, q_rare * med_us / factor)
        if si_k >= SI_CAP_N and si_n >= SI_CAP_GAPS:
            expected = _min(expected, _max(SI_CAP * 1e6 * st[sl, C_SI_MAX], factor * med_us) / factor)
    excess = _max(gap / expected - 1.0, 0.0)
    sil = excess / (excess + (factor - 1.0))
    dec = _silence_decision(sil, gap, conf, st[sl, C_SI_REP])
    # the calibrated score (silcal32): the gap's tail probability under the counts as they stood before it
    s_cal = 0.0
    if sil > 0:
        if med_us > 0:
            qm = gap / med_us
            p_long = (si_k + SC_A0) / (si_n + pr[P_SI_N0] + SC_A0)
            if qm >= factor:
                b = si_e + pr[P_SI_M0] * SC_C0
                p = p_long * math.exp(-(si_k + SC_C0) * math.log(1.0 + (qm - factor) / b))
            else:
                p = 1.0 - (1.0 - p_long) * (_max(qm - 1.0, 0.0) / (factor - 1.0))
            s_cal = 1.0 - _fmax(p, _TAIL_FLOOR)
        else:  # a configured interval before the median gap is known: the statistic itself
            s_cal = sil
    # learn the gap's rarity (its length in median gaps), where the median is known
    if has_prev and med_us > 0:
        d = pr[P_SI_DECAY]
        st[sl, C_SI_N] = d * si_n + 1.0
        over = gap - factor * med_us
        si_max = d * st[sl, C_SI_MAX]
        if over >= 0:  # long: at least `factor` median gaps (the gap that decides on a regular series)
            q = over / med_us
            st[sl, C_SI_K] = d * si_k + 1.0
            st[sl, C_SI_E] = d * si_e + _min(q, SI_WINSOR * m_now)
            if (not judged or sil < 0.5) and gap > 1e6 * si_max:  # the longest usual gap (s): not a silent one
                si_max = gap / 1e6
        else:
            st[sl, C_SI_K] = d * si_k
            st[sl, C_SI_E] = d * si_e
        st[sl, C_SI_MAX] = si_max
        # rep41: the longest gap shown; a silent one (or one before the interval is known) counts as at most `factor`
        # median gaps where it is a short run over the decision (at most SI_REPEAT x that), as nothing where it is an
        # outage, so a dropout does not make the next one usual
        shown = gap
        if not dec < 0.5:
            shown = _min(gap, factor * med_us) if gap <= SI_REPEAT * factor * med_us else 0.0
        st[sl, C_SI_REP] = _max(d * st[sl, C_SI_REP], shown / 1e6)
    if not _isfinite(sil):
        sil = 0.0
        dec = 0.0
        s_cal = 0.0
    return dec * pr[P_ON_SILENCE], gap, s_cal * pr[P_ON_SILENCE], sil * pr[P_ON_SILENCE]


@njit(**_STAGE)
def _robust_z(pr, xi, cnt, med, mad, ew_std, floor, sh_m, sh_s):
    """robust_z: the reading's distance from the window's median in units of a robust scale (1.4826 x MAD,
    floored by a quarter of the EWMA's standard deviation and by the shared floor); 0 until `min_readings`
    and where MAD = 0 (a quantised or mostly-constant window: ewma's and spike's case). Where ewma's fast level
    (the shift EWMA before this reading) has left the median by more than RZ_LAG_G robust scales but by at most
    RZ_LAG_K of its typical distances (ewma's `sh_s`: a lag the series shows normally, not a level shift), the
    window lags a moving series (a daily rate's morning rise against a window still mostly night): the distance is
    then from the nearer of the two, so a normal rise is no outlier and an outlier, far from both, still is
    (benchmarks/README.md, det28c).

    Reads no state column itself (med, mad, ew_std, floor, sh_m, sh_s: `_scales`); P_RZ_THRESHOLD, P_RZ_MIN,
    P_ON_ROBUST_Z.
    Writes nothing (the median and MAD are the refreshes'). Returns the score."""
    scaled = mad > 0
    rscale = _fmax(_fmax(_fmax(1.4826 * mad, 0.25 * ew_std), floor), 1e-9 * abs(med) + _TINY)
    dist = abs(xi - med)
    lag = abs(sh_m - med)
    if lag > RZ_LAG_G * rscale and lag <= RZ_LAG_K * sh_s:
        dist = _min(dist, abs(xi - sh_m))
    z = dist / rscale
    rz = z / (z + pr[P_RZ_THRESHOLD])
    ok = (cnt >= pr[P_RZ_MIN]) and _isfinite(rz) and scaled
    return (rz if ok else 0.0) * pr[P_ON_ROBUST_Z]


@njit(**_STAGE)
def _active_level(st, sl, pr, xi, cnt, has_prev, med, mad):
    """ewma's active level of an on/off series (a pump, a lane, a batch job): bursts rising twice as far above idle
    are a level shift that neither the rolling median (idle) nor the fast EWMA of every reading (the bursts are its
    normal excursions) sees. The excursion above the window's floor (its 5 % quantile, once the window is full) of
    the active readings (over ACTIVE_SPLIT x the learned excursion; before anything is learned, over FLOOR_MODE_Z
    robust sigmas or resolutions above the median) is learned with its typical spread; this reading and the one
    before, both active and both on the same side of the learned excursion, are scored by the nearer one's distance
    from it in units of that spread (at least the resolution), with the level-shift threshold, capped at 0.75: two
    readings, not a fast EWMA, so no state beyond the two learned figures. Scored only where the learned excursion
    is over ACTIVE_SEP spreads (one level, not a continuum above a floor: a periodic or trending series; the
    spread starts at ACTIVE_V0 x the first excursion, so this is also the warm-up) and over FLOOR_MODE_Z x the
    window's robust scale and robust change scale (the bursts stand far out of the idle noise and of the series'
    usual changes: not a few quantised levels, SKAB's flow at 32 / 33 / 34; the larger of the learned excursion and
    the pair's own is compared with the change scale, as a doubling doubles the changes within a burst too, which
    shut the gate at the onset itself). Both learn winsorised at 3 spreads,
    so a continuous channel back from an outage does not open the gate (GECCO). benchmarks/README.md, det25 / det27a.

    Reads C_LO_Q, C_PREV, C_RES, C_DSCALE, C_AC_M, C_AC_V (med, mad: `_scales`); P_RZ_WINDOW, P_SH_THRESHOLD.
    Writes C_AC_M, C_AC_V. Returns the score (0 where not scored)."""
    act_score = 0.0
    if cnt < pr[P_RZ_WINDOW]:  # (the floor of a full window)
        return act_score
    ac_m = st[sl, C_AC_M]
    ac_v = st[sl, C_AC_V]
    lo_q = st[sl, C_LO_Q]
    res = st[sl, C_RES]
    ac_x = xi - lo_q
    if ac_m > 0:
        split = ACTIVE_SPLIT * ac_m
        if ac_x > split:
            ac_sc = _fmax(_fmax(ac_v, res), 1e-9 * abs(ac_m) + _TINY)
            pv_x = st[sl, C_PREV] - lo_q
            if (has_prev and pv_x > split and ac_m > ACTIVE_SEP * ac_sc
                    and _max(ac_m, _min(ac_x, pv_x)) > FLOOR_MODE_Z * 1.4826 * _fmax(mad, st[sl, C_DSCALE])):
                ac_d = _max(_min(ac_x, pv_x) - ac_m, ac_m - _max(ac_x, pv_x))
                if ac_d > 0:
                    ac_q = ac_d / ac_sc
                    ac_score = ac_q / (ac_q + pr[P_SH_THRESHOLD])
                    if _isfinite(ac_score):
                        act_score = _min(ac_score, 0.75)
            # learn, winsorised at 3 spreads
            ac_lim = 3.0 * ac_v
            ac_dev = abs(ac_x - ac_m)
            st[sl, C_AC_V] = ac_v + ACTIVE_RATE * (_min(ac_dev, ac_lim) - ac_v)
            st[sl, C_AC_M] = ac_m + ACTIVE_RATE * _min(_max(ac_x - ac_m, -ac_lim), ac_lim)
    elif (xi > med) and (ac_x > FLOOR_MODE_Z * _fmax(1.4826 * mad, res)):  # the first active reading
        st[sl, C_AC_M] = ac_x
        st[sl, C_AC_V] = ACTIVE_V0 * ac_x
    return act_score


@njit(**_STAGE)
def _ewma(st, sl, pr, xi, cnt, has_prev, med, mad, ew_m, ew_std, lr_std, floor, s_robust_z, sh_m0, sh_s):
    """ewma: the reading against the EWMA's bands, and the level shift (a short EWMA's distance from the window's
    median in units of its own typical distance); then learns the reading: the EWMA (the change winsorised at 4
    standard deviations once `min_readings` are seen) and the shift's typical distances (overall and per side).

    The decision's score counts the level shift only on readings that are not outliers themselves (those are
    robust_z's); the fused score counts it always. Both count the active level of an on/off series
    (`_active_level`: bursts rising twice as far above idle). Also returns the shift's input to the likelihood (the
    same distance in units of its typical size, and on its own side, capped at 0.75).

    Reads C_EW_V, C_SH_N, C_SH_SP, C_SH_SN, C_LO_MIN, C_LO_Q, C_DSCALE (med, mad, ew_m, ew_std, sh_m0, sh_s,
    lr_std, floor: `_scales`; and `_active_level`'s); P_EW_THRESHOLD, P_EW_MIN, P_EW_FLOOR, P_EW_ALPHA, P_SH_ALPHA,
    P_SH_THRESHOLD, P_SH_DECAY, P_LS_THR, P_LS_FLOOR, P_ON_EWMA. Writes C_EW_M, C_EW_V, C_SH_M, C_SH_S, C_SH_N,
    C_SH_SP, C_SH_SN (and `_active_level`'s: C_AC_M, C_AC_V).
    Returns (score for the decision, score for the fusion, the likelihood's level-shift input)."""
    scaled = mad > 0
    escale = _max(_fmax(ew_std, floor), 1e-9 * abs(ew_m) + _TINY)
    ez = abs(xi - ew_m) / escale
    es = ez / (ez + pr[P_EW_THRESHOLD])
    ok = (cnt >= pr[P_EW_MIN]) and _isfinite(es) and scaled
    if not ok:
        es = 0.0
    sh_a = pr[P_SH_ALPHA]
    sh_m = sh_m0 + sh_a * (xi - sh_m0) if has_prev else xi
    sh_d = abs(sh_m - med)
    # where MAD = 0 (quantised, mostly-zero, on/off) the typical distance is floored by the long-run
    # spread, so an on/off series' bursts are its normal excursions and a real change of rate is not
    # an on/off series whose window is mostly "on" has MAD > 0, yet its idle floor is still a mode of its own
    # (at least 5 % of the window exactly at its minimum, the median over FLOOR_MODE_Z typical changes, spike's
    # robust change scale, above it): the rolling median has flipped from the idle to the active level, so the
    # idle readings that follow are its normal excursions too, and the scale keeps the long-run floor it has
    # where MAD = 0 (a quantised series' low end is a few typical changes below its median: unchanged)
    lo_min = st[sl, C_LO_MIN]
    floor_mode = (scaled and (st[sl, C_LO_Q] <= lo_min)
                  and (med - lo_min > FLOOR_MODE_Z * 1.4826 * st[sl, C_DSCALE]))
    sh_floor = 2.0 * pr[P_EW_FLOOR] * lr_std
    if scaled:
        sh_scale = _fmax(sh_s, _fmax(0.05 * 1.4826 * mad, sh_floor) if floor_mode else 0.05 * 1.4826 * mad)
    else:
        sh_scale = _fmax(sh_s, sh_floor)
    shift_q = sh_d / sh_scale
    shift_score = shift_q / (shift_q + pr[P_SH_THRESHOLD])
    sh_n = st[sl, C_SH_N]
    warm = sh_n >= _max(pr[P_EW_MIN], 0.25 / pr[P_SH_DECAY])
    quiet = (es < 0.5) and (s_robust_z < 0.5)
    if warm and (sh_s > 0) and _isfinite(shift_score):  # also where MAD = 0 (quantised series)
        shift_score = _min(shift_score, 0.75)
    else:
        shift_score = 0.0
    act_score = _active_level(st, sl, pr, xi, cnt, has_prev, med, mad)
    # the decision counts the level shift only on readings that are not outliers themselves (those are
    # robust_z's); the fused score counts it always, so a bigger outlier never scores lower. The active level counts
    # always: its readings are the on/off series' bursts, outliers of a window that is mostly idle
    s_ewma = _max(_max(es, shift_score if quiet else 0.0), act_score) * pr[P_ON_EWMA]
    s_ewma_fused = _max(_max(es, shift_score), act_score) * pr[P_ON_EWMA]

    # the likelihood's level-shift input
    li_shift_q = sh_d / _fmax(sh_s, _TINY)
    li_shift = li_shift_q / (li_shift_q + pr[P_SH_THRESHOLD])
    if warm and (sh_s > 0) and _isfinite(li_shift):
        li_shift = _min(li_shift, 0.75)
    else:
        li_shift = 0.0
    # direction-aware: the same distance in units of its typical size on its own side
    sdir = sh_m - med
    sh_sp = st[sl, C_SH_SP]
    sh_sn = st[sl, C_SH_SN]
    ls_thr = pr[P_LS_THR]
    if ls_thr > 0:
        side = sh_sp if sdir > 0 else sh_sn
        side_q = sh_d / _fmax(_fmax(side, pr[P_LS_FLOOR] * sh_s), _TINY)
        side_shift = side_q / (side_q + ls_thr)
        if warm and (sh_s > 0) and _isfinite(side_shift):
            li_shift = _max(li_shift, _min(side_shift, 0.75))

    # learn: the EWMA, its change winsorised (np.clip) at 4 standard deviations once warm
    a = pr[P_EW_ALPHA]
    d = xi - ew_m
    if cnt >= pr[P_EW_MIN]:
        lim = 4.0 * ew_std
        d = _min(_max(d, -lim), lim)  # np.clip
    if has_prev:
        st[sl, C_EW_M] = ew_m + a * d
        st[sl, C_EW_V] = (1.0 - a) * (st[sl, C_EW_V] + a * d * d)
    else:
        st[sl, C_EW_M] = xi
        st[sl, C_EW_V] = 0.0
    # learn: the short EWMA and the shift's typical distances (winsorised at 3 typical distances)
    st[sl, C_SH_M] = sh_m
    dd = sh_d if _isfinite(sh_d) else 0.0
    if sh_s > 0:
        dd = _min(dd, 3.0 * sh_s)
    if has_prev and _isfinite(med):
        rate = _max(pr[P_SH_DECAY], 1.0 / (sh_n + 1.0))
        st[sl, C_SH_S] = sh_s + rate * (dd - sh_s)
        st[sl, C_SH_N] = sh_n + 1.0
        dp = _max(sdir, 0.0) if _isfinite(sdir) else 0.0
        dn = _max(-sdir, 0.0) if _isfinite(sdir) else 0.0
        if sh_sp > 0:
            dp = _min(dp, 3.0 * sh_sp)
        if sh_sn > 0:
            dn = _min(dn, 3.0 * sh_sn)
        st[sl, C_SH_SP] = sh_sp + rate * (dp - sh_sp)
        st[sl, C_SH_SN] = sh_sn + rate * (dn - sh_sn)
    return s_ewma, s_ewma_fused, li_shift


@njit(**_STAGE)
def _envelope(st, sl, pr, xi, cnt, has_prev, res, sh_m0):
    """envelope (counted in ewma's score): the fast level (ewma's shift EWMA, as it will be after this reading)
    beyond the range the series' fast level has shown, in units of `envelope_threshold` x that range's width
    (floored by the resolution): a sustained level change larger than anything the series has done (a rate
    doubling its daily peak, a sparse count's rate x5), which the window's median and spread follow. The range:
    a decaying memory (ewma's shift_memory) of the highest and lowest fast level, widening by at most
    `envelope_growth` x its width a reading, so a new level stays outside it for a while. 0 until
    `envelope_min_history` readings, and where `envelope_threshold` is 0. Then learns the range.

    Reads C_ENV_HI, C_ENV_LO, C_DSCALE_N (res, sh_m0: `_scales`); P_SH_ALPHA, P_ENV_K, P_ENV_G, P_ENV_MIN,
    P_ENV_DECAY, P_ON_EWMA. Writes C_ENV_HI, C_ENV_LO. Returns the score."""
    if not has_prev:
        st[sl, C_ENV_HI] = xi
        st[sl, C_ENV_LO] = xi
        return 0.0
    lvl = sh_m0 + pr[P_SH_ALPHA] * (xi - sh_m0)
    hi = st[sl, C_ENV_HI]
    lo = st[sl, C_ENV_LO]
    width = _fmax(hi - lo, res)
    out = max(lvl - hi, lo - lvl)
    bar = pr[P_ENV_K] * width
    warm = cnt >= pr[P_ENV_MIN]
    es = 0.0
    dsc_n = st[sl, C_DSCALE_N]
    # (a smaller step out is the range widening; a window of fewer than DSCALE_LR_MIN changes is showers after
    # dry spells, whose largest yet is no level change; rare)
    if out >= bar and bar > 0 and warm and dsc_n >= DSCALE_LR_MIN:
        q = out / bar
        es = min(q / (q + 1.0), ENVELOPE_CAP)
    # decay toward the level (not while the series idles), widen toward it by at most `grow` (at once while
    # warming up)
    rate = pr[P_ENV_DECAY] if dsc_n > 0 else 0.0
    grow = pr[P_ENV_G] * width if warm else np.inf
    st[sl, C_ENV_HI] = max(hi + rate * (lvl - hi), min(lvl, hi + grow))
    st[sl, C_ENV_LO] = min(lo + rate * (lvl - lo), max(lvl, lo - grow))
    return es * pr[P_ON_EWMA]


@njit(**_STAGE)
def _count_rate(st, sl, pr, xi, cnt, has_prev, med, mad, res):
    """count rate (counted in ewma's score): a mostly-zero series (the window's median, its 5 % quantile and its
    minimum all at a floor of 0, its MAD 0: a sparse count, an on/off series idle most of the time, rain) whose
    *onsets* (a reading above the floor after one at it) come more often than the series' own: a one-sided Bernoulli
    CUSUM S of the readings that follow one at the floor (its trials), the alternative `count_factor` K x the odds
    of an onset, so S += ln K - ln(1 + (K - 1) p) at an onset and -ln(1 + (K - 1) p) otherwise, where p is the
    series' long-run onset rate per trial taken as its estimate plus COUNT_UCB standard errors of a memory of
    min(count, 2,000) readings (a rate learned from few onsets, low by chance, is no change). A reading after one
    above the floor is no trial (an on/off series' burst or a shower is one onset however long it lasts, so a series
    whose bursts get longer is not a rate change). Decides where S reaches `count_threshold` (false alarms: at most
    about e^-threshold per onset); S then jumps to COUNT_CAP x the threshold (one decision while the rate stays up,
    not one per onset) and is held there at most; score q / (q + 1) of q = S / threshold, capped at 0.75 like the
    level shift's, 0 below the decision level. From `envelope_min_history` readings on; where the gate does not hold
    S restarts at 0. The rate is learned on every trial (a plain mean, then 2,000 readings), gated or not.

    Reads C_LO_MIN, C_LO_Q, C_PREV, C_CR_P, C_CR_S (med, mad, res: `_scales`); P_CR_THR, P_CR_LNK, P_CR_KM1,
    P_ENV_MIN, P_LR_RATE, P_ON_EWMA. Writes C_CR_P, C_CR_S. Returns the score."""
    h = pr[P_CR_THR]
    if not (h > 0 and has_prev):
        return 0.0
    lo = st[sl, C_LO_Q]
    half = 0.5 * res
    s0 = st[sl, C_CR_S]
    trial = st[sl, C_PREV] - lo <= half  # the previous reading at the floor (False where no floor is known yet)
    onset = xi - lo > half
    lr_rate = pr[P_LR_RATE]
    score = 0.0
    s = 0.0
    if mad == 0 and med <= lo and st[sl, C_LO_MIN] >= lo and abs(lo) <= half and cnt >= pr[P_ENV_MIN]:
        s = s0
        if trial:
            p0 = st[sl, C_CR_P]
            n_eff = _min(cnt, 1.0 / lr_rate)
            pu = p0 + COUNT_UCB * np.sqrt(p0 / n_eff) + 1.0 / n_eff
            s = _max(s - math.log(1.0 + pr[P_CR_KM1] * pu) + (pr[P_CR_LNK] if onset else 0.0), 0.0)
            if s >= h:  # reached: latched at the cap
                s = _max(s, COUNT_CAP * h) if s0 < h else _min(s, COUNT_CAP * h)
        if s >= h:
            q = s / h
            score = _min(q / (q + 1.0), ENVELOPE_CAP)
    st[sl, C_CR_S] = s
    if trial:
        p0 = st[sl, C_CR_P]
        st[sl, C_CR_P] = p0 + _max(lr_rate, 1.0 / cnt) * ((1.0 if onset else 0.0) - p0)
    return score * pr[P_ON_EWMA]


@njit(**_STAGE)
def _reach(st, sl, pr, xi, cnt, has_prev, mad, res):
    """reach (reach33; road31's statistic, score-only): this reading beyond the range of readings the series has
    shown, in units q of `reach_threshold` x that range's width (floored at XR_RES resolutions and XR_STEPS of
    spike's robust scale of changes): a single reading beyond anything the series has done (a capped road speed of
    189 on a road whose readings never passed 109), which the window's scales miss where the window is a rush
    hour's (its MAD, spike's step floor inflated by the dips). The range: the highest and lowest reading, widening
    by at most `envelope_growth` x its width a reading after `envelope_min_history` readings, so one outlier teaches
    it little; it never decays (road31's decaying range let a SKAB accelerometer's ordinary dip leave the range it
    had narrowed to over 8,000 readings). Scored only where q >= 1 and the reading is reached by a jump of at least
    the bar from the previous one, itself inside the range (a spike, not a ramp out of the range nor the next
    reading of a new level), from `reach_min_history` readings on, where the window's MAD > 0 and spike's window
    holds >= DSCALE_LR_MIN non-zero changes (not a count, an idle on/off series, rain), and where `reach_threshold`
    > 0. Then learns the range. It decides nothing: `_reach_score` turns q into a score only the emitted
    anomaly_score reads. Second path (traffic36), under the same gates: a reading beyond the range at all, reached
    by a jump of at least XR_JUMP x the largest jump between consecutive readings the series has made (C_XR_J)
    and XR_JUMP_W x the range's width (a spike, not a ramp growing out of a flat series' range), from a previous
    reading whose own change (from C_BASE) was at most XR_JUMP_CALM x that largest (not the next step of a move
    already under way), scores q = that jump / (XR_JUMP x the largest) where that is larger (a road's stalled
    vehicle: a speed a fraction of a width below the range its jams widened, but a fall no reading of the road
    ever made at once; a capped speed's spurious vehicle under a width above its cap); then learns the largest
    jump. Third path (spike37), under the same gates, on the reading after: the previous reading left the range
    from a reading inside it (C_XR_X) and this one is back inside; where the there-and-back (the smaller of the
    jump out and the jump back) is at least XR_TB x the largest there-and-back the series has made (C_XR_TB),
    q = that / (XR_TB x the largest) where larger (the missed stalls and spurious vehicles of traffic36: reached
    by a jump a noisy night matched, but no two readings of the road ever went out and back that far; a server's
    incident reading; a ramp, a step or a new level does not come back), unless the excursion itself was emitted
    at least as high as reach's least score (its score at q = 1: one event, one emission; `_readings` keeps the
    excursion's emission, before the second stage, in C_XR_X as 1 + it). Then learns the largest there-and-back
    and whether this reading left the range from inside it (C_XR_X 1, or 0).

    Reads C_XR_HI, C_XR_LO, C_XR_J, C_XR_TB, C_XR_X, C_XR_N, C_XR_T, C_DSCALE, C_DSCALE_N, C_PREV, C_BASE (mad,
    res: `_scales`); P_XR_THR, P_XR_MIN, P_ENV_G, P_ENV_MIN, P_ENV_DECAY. Writes C_XR_HI, C_XR_LO, C_XR_J,
    C_XR_TB, C_XR_X. Returns q where scored, else 0."""
    k = pr[P_XR_THR]
    if not (k > 0):
        return 0.0
    if not has_prev:
        st[sl, C_XR_HI] = xi
        st[sl, C_XR_LO] = xi
        st[sl, C_XR_X] = 0.0
        return 0.0
    hi = st[sl, C_XR_HI]
    lo = st[sl, C_XR_LO]
    width = _fmax(_fmax(hi - lo, XR_RES * res), XR_STEPS * st[sl, C_DSCALE])
    out = max(xi - hi, lo - xi)
    bar = k * width
    dsc_n = st[sl, C_DSCALE_N]
    prev = st[sl, C_PREV]
    q = 0.0
    jump = abs(xi - prev)
    jmax = st[sl, C_XR_J]
    # spike37: the there-and-back of the previous reading (0 where the two changes have one sign, or base is NaN)
    d_out = prev - st[sl, C_BASE]
    tb = _min(abs(d_out), jump) if d_out * (xi - prev) < 0 else 0.0
    tbmax = st[sl, C_XR_TB]
    gates = bar > 0 and cnt >= pr[P_XR_MIN] and mad > 0 and dsc_n >= DSCALE_LR_MIN
    xr_x = st[sl, C_XR_X]
    if (gates and xr_x > 0 and lo <= xi <= hi and tbmax > 0 and tb >= XR_TB * tbmax):
        # one event, one emission: not where the excursion itself was emitted at least as high as reach's least
        # score (its score at q = 1, `_reach_score`'s P(beyond) without the excess)
        rate = pr[P_ENV_DECAY]
        xr_n = st[sl, C_XR_N] * math.exp(-rate * (cnt - st[sl, C_XR_T]))
        n_eff = (1.0 - math.exp(-rate * (cnt + 1.0))) / rate
        if xr_x - 1.0 < 1.0 - _min((xr_n + XR_A0) / _max(n_eff, 1.0), 1.0):
            q = tb / (XR_TB * tbmax)
    # (the previous reading inside the range: one reading leaving it, not a ramp or a new level running beyond it)
    if gates and lo <= prev <= hi:
        if out >= bar and jump >= bar:
            q = _max(q, out / bar)
        # traffic36: beyond the range at all, by a jump of at least XR_JUMP x any the series has made and
        # XR_JUMP_W x the range's width, from a previous reading that itself moved at most XR_JUMP_CALM x that
        if (out > 0 and jmax > 0 and jump >= XR_JUMP * jmax and jump >= XR_JUMP_W * width
                and abs(prev - st[sl, C_BASE]) <= XR_JUMP_CALM * jmax):
            q = _max(q, jump / (XR_JUMP * jmax))
    grow = pr[P_ENV_G] * width if cnt >= pr[P_ENV_MIN] else np.inf
    if _isfinite(xi):
        st[sl, C_XR_HI] = max(hi, min(xi, hi + grow))
        st[sl, C_XR_LO] = min(lo, max(xi, lo - grow))
        if jump > jmax:  # (False where prev is NaN)
            st[sl, C_XR_J] = jump
        if tb > tbmax:
            st[sl, C_XR_TB] = tb
    st[sl, C_XR_X] = 1.0 if (out > 0 and lo <= prev <= hi) else 0.0
    return q


@njit(**_STAGE)
def _exit(st, sl, pr, xi, ti, cnt, has_prev, mad, res):
    """exit (exit40, exit41; score-only, beside reach): a *sustained* exit from the range of readings the series has
    shown. reach scores a reading that jumps out of the range; a slow exit (a stopped machine cooling below the
    lowest reading it ever showed, an overheating above the highest) reaches no reading by a jump, and reach's range
    widens after it (by `envelope_growth` x its width a reading), so no single reading is far beyond it. Here an
    excursion begins where a reading is beyond reach's range (as it stands before reach learns this reading); its
    anchor is the edge it left (C_XE_A), and it lasts while every reading stays beyond that anchor less XE_H x the
    bar (noise at the edge does not end it; C_XE_N counts its readings, + above, - below), for at most XE_END
    readings (an anchor left early in a series' life, while its range was narrow, is never re-crossed by a series
    that settled beyond it: without the limit that excursion stayed open for good and no later one could begin).
    Where it has lasted XE_M to XE_AGE readings and XE_M_US (an hour: a one-minute series' 12 readings are not a
    sustained exit) and this reading is at least the bar, XE_K x the range's width (reach's, floored as reach floors
    it), beyond the anchor, it returns q = that depth / (XE_KQ x the width; exit40's bar, so q >= XE_K / XE_KQ),
    once per excursion (C_XE_N moves XE_FIRED further from 0): a ramp that goes on or saturates into a plateau
    beyond the range is not scored again, and a trend that creeps out of the range reaches the bar only after XE_AGE
    readings. An excursion is never scored if it begins within XE_QUIET readings or XE_QUIET_US (a day) of the last
    one's end or of the series' first reading (C_XE_A holds that count and C_XE_T that time between excursions;
    C_XE_T holds the open one's start): a trending or still-widening range is left every few readings, and a range
    is the series' own only once it has covered its daily cycle (GECCO's one-minute channels, 3 days long, left a
    range they had shown for hours, and those emissions moved the per-channel LODO's pooled threshold). An excursion
    that never went XE_H bars beyond its anchor (C_XE_DP 0) only touched the range's edge (a quantised channel at
    the top of its range, a flow's new high by a few units): when it ends the XE_QUIET readings count from its end,
    but the day's clock is what it was before it began (C_XE_PT; gecco43: on main such touches held GECCO's real
    exits back for a day). Under
    reach's gates (from `reach_min_history` readings, the window's MAD > 0, spike's window holding >= DSCALE_LR_MIN
    changes, `reach_threshold` > 0); the caller scores q through reach's tail (`_reach_score`), so a series that
    often leaves its range learns that it does. O(1).

    Reads C_XE_A, C_XE_N, C_XE_T, C_XE_PT, C_XE_DP, C_XR_HI, C_XR_LO, C_DSCALE, C_DSCALE_N (mad, res: `_scales`);
    P_XR_THR, P_XR_MIN. Writes C_XE_A, C_XE_N, C_XE_T, C_XE_PT, C_XE_DP. Returns q where scored, else 0."""
    if st[sl, C_XE_T] == 0:
        st[sl, C_XE_T] = ti  # the series' first reading (µs): no excursion is scored within XE_QUIET_US of it
    if not (pr[P_XR_THR] > 0) or not has_prev or not _isfinite(xi):
        return 0.0
    hi = st[sl, C_XR_HI]
    lo = st[sl, C_XR_LO]
    n = st[sl, C_XE_N]
    if n == 0 and lo <= xi <= hi:
        return 0.0  # (no excursion open and none begins: nearly every reading; nothing to write)
    a = st[sl, C_XE_A]
    width = _fmax(_fmax(hi - lo, XR_RES * res), XR_STEPS * st[sl, C_DSCALE])
    bar = XE_K * width
    if n != 0:
        side = 1.0 if n > 0 else -1.0
        if (xi - a) * side > -XE_H * bar and abs(n) - (XE_FIRED if abs(n) >= XE_FIRED else 0.0) < XE_END:
            n += side
            if (xi - a) * side >= XE_H * bar:
                st[sl, C_XE_DP] = 1.0  # gecco43: it has left the range, not only touched its edge
        elif st[sl, C_XE_DP] > 0:
            # back inside, or XE_END readings long (exit41: an anchor left early in a series' life, while its range
            # was still narrow, is never re-crossed by a series that settled beyond it; it must not keep exit shut)
            n = 0.0
            a = cnt  # (between excursions C_XE_A holds the count at which the last one ended, C_XE_T its time)
            st[sl, C_XE_T] = ti
        else:
            # gecco43: an excursion that never went XE_H bars beyond its anchor touched the range's edge (a quantised
            # channel at the top of its range, a flow's new high by a few units): the XE_QUIET readings count from
            # its end (a range that is still widening is touched every few readings), but the day's clock stays as it
            # was before it began, so a touch does not hold back a real exit for a day
            n = 0.0
            a = cnt
            st[sl, C_XE_T] = st[sl, C_XE_PT]
    if n == 0:
        # an excursion that begins within XE_QUIET readings of the last one's end is never scored: the range of a
        # trending series (or one still widening) is left every few readings
        calm = cnt - a >= XE_QUIET and ti - st[sl, C_XE_T] >= XE_QUIET_US
        if xi > hi:
            n = 1.0 if calm else 1.0 + XE_FIRED
            a = hi
        elif xi < lo:
            n = -1.0 if calm else -1.0 - XE_FIRED
            a = lo
        if n != 0:
            st[sl, C_XE_PT] = st[sl, C_XE_T]  # gecco43: the day's clock, restored if this one only touches the edge
            st[sl, C_XE_DP] = 1.0 if (xi - a) * (1.0 if n > 0 else -1.0) >= XE_H * bar else 0.0
            st[sl, C_XE_T] = ti  # (while an excursion is open C_XE_T holds the time it began)
    q = 0.0
    if n != 0 and XE_M <= abs(n) <= XE_AGE and ti - st[sl, C_XE_T] >= XE_M_US:
        depth = (xi - a) * (1.0 if n > 0 else -1.0)
        if (bar > 0 and depth >= bar and cnt >= pr[P_XR_MIN] and mad > 0
                and st[sl, C_DSCALE_N] >= DSCALE_LR_MIN):
            q = depth / (XE_KQ * width)
            n += XE_FIRED if n > 0 else -XE_FIRED
    st[sl, C_XE_N] = n
    st[sl, C_XE_A] = a
    return q


@njit(**_RARE)
def _period_learn(st, sl, period):
    """period42: one confirmed period (µs) judged against and then learned into the series' log-periods. Why a log:
    a period x 2 and x 0.5 are alike far, and a series' periods jitter by a share of themselves. Judged only once
    PE_MIN_N periods are learned with a spread of at most PE_SD_MAX (the series is periodic at all); a period beyond
    PE_Z spreads and PE_MIN_LOG on the run's side, within PE_AGREE (log) of the run's last period (C_PE_RY), extends
    the run (C_PE_R: signed count, + longer), else starts one; where the run reaches PE_RUN its tail (this period's
    two-sided normal tail, z capped at PE_ZCAP, to the power of the run's length) is returned and the learning starts
    afresh (the new period is the series' own from then on: one change, one emission). The spread is PE_MAD_SD x
    the log-periods' mean |deviation| (an odd crossing while the level settles moves it little); learned winsorised
    at PE_Z x the larger of it and PE_SD_MAX, so an irregular series' outliers widen the spread and shut the
    judgement. Reads and writes C_PE_N, C_PE_M, C_PE_V, C_PE_R, C_PE_RY. Returns the tail, or 1 (nothing)."""
    if not (period > 0):
        return 1.0
    y = math.log(period)
    n = st[sl, C_PE_N]
    m = st[sl, C_PE_M]
    v = st[sl, C_PE_V]
    d = y - m
    spread = PE_MAD_SD * v  # (C_PE_V: the mean |deviation| of the log-periods, robust to a few odd crossings)
    sd = _fmax(spread, PE_SD_FLOOR)
    p = 1.0
    if n >= PE_MIN_N and spread <= PE_SD_MAX:
        r = st[sl, C_PE_R]
        if abs(d) >= PE_Z * sd and abs(d) >= PE_MIN_LOG:
            side = 1.0 if d > 0 else -1.0
            # (a run's periods agree with each other: a new period, not a day whose shape split one crossing in two)
            r = r + side if r * side > 0 and abs(y - st[sl, C_PE_RY]) <= PE_AGREE else side
            st[sl, C_PE_RY] = y
        else:
            r = 0.0
        st[sl, C_PE_R] = r
        if abs(r) >= PE_RUN:
            z = _min(abs(d) / sd, PE_ZCAP)
            p = math.erfc(z / math.sqrt(2.0)) ** abs(r)
            st[sl, C_PE_N] = 0.0
            st[sl, C_PE_R] = 0.0
            return p
    clip = PE_Z * _fmax(sd, PE_SD_MAX)  # (an odd crossing, while the level settles or a burst passes, teaches little)
    d = _min(_fmax(d, -clip), clip)
    w = 1.0 / _min(n + 1.0, PE_MEM)
    st[sl, C_PE_M] = m + w * d if n > 0 else y
    st[sl, C_PE_V] = v + w * (abs(d) - v) if n > 0 else 0.0
    st[sl, C_PE_N] = _min(n + 1.0, PE_MEM)
    return p


@njit(**_STAGE)
def _period(st, sl, pr, xi, ti, cnt, has_prev):
    """period42 (score-only): a sustained change of the series' period (or oscillation rate), which no value
    detector decides on (a rate's day half as long keeps its level, range and spread). A Schmitt trigger around the
    series' slow level (C_PE_L, memory PE_LEVEL_MEM readings) with a band of PE_K x its mean |deviation| (C_PE_A):
    the side (C_PE_S) flips where a reading passes the far edge. A flip is pending (+-1) until the series has held
    the side PE_DWELL x the learned period (PE_DWELL_GAPS median gaps before any), then confirmed (+-2) and its time
    (C_PE_TF, the flip's) gives the period since the last confirmed crossing of its kind (C_PE_TU up, C_PE_TD down),
    judged and learned by `_period_learn`; a pending flip that flips back is a glitch (a burst): the side and its
    time return to the last confirmed ones. Time, not readings: an irregularly sampled series' period is its
    clock's. O(1), no ring. Reads C_GAP_MED; reads and writes the C_PE_* columns; P_ON_EWMA off: nothing.
    Returns the score (1 - the run's tail) where a run was judged on this reading, else 0."""
    if not (pr[P_ON_EWMA] > 0) or not _isfinite(xi):
        return 0.0
    if not has_prev or cnt < 1.0:
        st[sl, C_PE_L] = xi
        st[sl, C_PE_A] = 0.0
        return 0.0
    lv = st[sl, C_PE_L]
    dev = xi - lv
    a = st[sl, C_PE_A]
    rate = _fmax(1.0 / (cnt + 1.0), 1.0 / PE_LEVEL_MEM)
    st[sl, C_PE_L] = lv + rate * dev
    st[sl, C_PE_A] = a + rate * (abs(dev) - a)
    band = PE_K * a
    if not (band > 0):
        return 0.0
    s = st[sl, C_PE_S]
    side = 1.0 if s > 0 else (-1.0 if s < 0 else 0.0)
    now = 1.0 if dev > band else (-1.0 if dev < -band else 0.0)
    if now != 0 and now != side:
        if abs(s) == 1.0:  # a pending flip undone: a glitch; back to the last confirmed side and its crossing's time
            st[sl, C_PE_S] = 2.0 * now
            st[sl, C_PE_TF] = st[sl, C_PE_TU] if now > 0 else st[sl, C_PE_TD]
        else:
            st[sl, C_PE_S] = now
            st[sl, C_PE_TF] = ti
        return 0.0
    if abs(s) != 1.0:
        return 0.0
    return _period_pending(st, sl, ti, side)


@njit(**_RARE)
def _period_pending(st, sl, ti, side):
    """period42: a pending flip of `_period`'s trigger (side `side`), confirmed once it has held the side the dwell
    (PE_DWELL x the learned period, at least PE_DWELL_GAPS median gaps); a confirmed flip's period is judged and
    learned (`_period_learn`). Not inlined: few readings come here, and the loop over readings stays small (its
    throughput). Reads C_GAP_MED, C_PE_N, C_PE_M, C_PE_TF; writes C_PE_S, C_PE_TU or C_PE_TD. Returns the score."""
    n = st[sl, C_PE_N]
    dwell = PE_DWELL_GAPS * st[sl, C_GAP_MED]
    if n > 0:
        dwell = _fmax(dwell, PE_DWELL * math.exp(st[sl, C_PE_M]))
    tf = st[sl, C_PE_TF]
    if not (ti - tf >= dwell):
        return 0.0
    st[sl, C_PE_S] = 2.0 * side
    col = C_PE_TU if side > 0 else C_PE_TD
    last = st[sl, col]
    st[sl, col] = tf
    if not (last > 0):
        return 0.0
    p = _period_learn(st, sl, tf - last)
    return 1.0 - _fmax(p, _TAIL_FLOOR) if p < 1.0 else 0.0


@njit(**_STAGE)
def _reach_score(st, sl, pr, q, cnt):
    """reach's score (reach33): 1 - the posterior-predictive probability, under the series' own history, of a
    reading at least q bars beyond its range (layout.XR_A0's comment): P(beyond) from the decayed count of readings
    scored beyond it among the decayed count of readings (memory `envelope_memory`), the excess q - 1 by a Lomax
    tail fitted to theirs. Score-only: the fused raw score, the likelihood's input, the tail fit, the veto and every
    decision never read it; `_readings` emits the larger of it and `_calibrate`'s score, through the second stage.
    It has no re-arm memory and sets none (a reading beyond the range reached by a jump is one reading an event;
    through the value detectors' memory it would hold back their emissions that follow, road31's GECCO finding),
    and its own count makes a series that often leaves its range (a heavy tail) score such readings lower. The
    counts decay lazily, only on the rare readings scored (O(1)). 0 where q is 0 or ewma is off.

    Reads and writes C_XR_N, C_XR_E, C_XR_T; reads P_ENV_DECAY, P_ON_EWMA. Returns the score."""
    if not (q >= 1.0) or not (pr[P_ON_EWMA] > 0):
        return 0.0
    rate = pr[P_ENV_DECAY]
    d = math.exp(-rate * (cnt - st[sl, C_XR_T]))
    xr_n = st[sl, C_XR_N] * d
    xr_e = st[sl, C_XR_E] * d
    n_eff = (1.0 - math.exp(-rate * (cnt + 1.0))) / rate
    a = xr_n + XR_C0
    b = xr_e + XR_C0 * XR_M0
    p = _min((xr_n + XR_A0) / _max(n_eff, 1.0), 1.0) * (1.0 + (q - 1.0) / b) ** (-a)
    st[sl, C_XR_N] = xr_n + 1.0
    st[sl, C_XR_E] = xr_e + _min(q - 1.0, 5.0 * b / a)
    st[sl, C_XR_T] = cnt
    return 1.0 - _fmax(p, _TAIL_FLOOR)


@njit(**_STAGE)
def _spike(st, sl, pr, xi, cnt, has_prev, mad, res):
    """spike: the reading's change from the previous value, as far as it is kept against the value before that
    (a one-reading spike and its return both count), in units of the window's robust change scale (1.4826 x the
    median non-zero change, floored by a tenth of the values' robust scale, `floor` x the long-run RMS step and
    the resolution); 0 until `min_readings`. Where the window has no non-zero change (an idle stretch longer than
    it) the scale is the long-run RMS of the non-zero changes (0 until one is learned), and where it has fewer than
    DSCALE_LR_MIN whose robust scale is over DSCALE_LR_RATIO x spike's long-run scale, it moves toward that
    (`_refresh` learns both). Then learns the long-run RMS step (a step: the previous change as far as this
    reading kept it, so repeated spikes are not learned).

    Reads C_PREV, C_BASE, C_DSCALE, C_DSCALE_N, C_DSCALE_LR, C_CHG_RMS_LR, C_CH_V, C_DCH (mad, res: `_scales`);
    P_SP_THRESHOLD, P_SP_MIN, P_SP_FLOOR,
    P_LR_RATE, P_ON_SPIKE. Writes C_CH_V, C_DCH. Returns (score, |change| from the previous value)."""
    prev = st[sl, C_PREV]
    change = abs(xi - prev)
    back = abs(xi - st[sl, C_BASE])
    dchange = _min(change, back) if _isfinite(back) else change
    dsc_n = st[sl, C_DSCALE_N]
    # no non-zero change in the window (an idle stretch longer than it): the first change is judged against the
    # long-run RMS of the series' non-zero changes (an on/off series' usual switch is not a spike, ten times it
    # is) instead of not at all; a window of a few changes whose robust scale is far above spike's long-run
    # scale (an on/off series' switches after a mostly idle stretch) moves toward it, in proportion to how few
    # they are. Anywhere else (and before anything is learned) the window's robust scale as before
    wscale = 1.4826 * st[sl, C_DSCALE]
    if dsc_n < DSCALE_LR_MIN:  # (the memories are read only here: most windows have more changes)
        chg_lr = st[sl, C_CHG_RMS_LR]
        dsc_lr = st[sl, C_DSCALE_LR]
        if dsc_n == 0 and chg_lr == chg_lr:
            wscale = chg_lr
        elif dsc_lr == dsc_lr and wscale > DSCALE_LR_RATIO * dsc_lr:
            wscale = dsc_lr + (dsc_n / DSCALE_LR_MIN) * (wscale - dsc_lr)
    # floor: the long-run RMS step (zeros included; a step = a change the next reading kept), so an
    # on/off series' normal switching, rare against the median of its small changes, is not a spike
    ch_rms = np.sqrt(st[sl, C_CH_V])
    dscale = _fmax(_fmax(_fmax(wscale, 0.1 * 1.4826 * mad), _fmax(pr[P_SP_FLOOR] * ch_rms, res)),
                   1e-9 * abs(prev) + _TINY)
    spq = dchange / dscale
    sp = spq / (spq + pr[P_SP_THRESHOLD])
    # no non-zero change in the window and nothing learned (a dry / stuck series): the first change is not a spike
    ok = (cnt >= pr[P_SP_MIN]) and _isfinite(sp) and _isfinite(wscale)
    if not ok:
        sp = 0.0
    if has_prev:
        # learn: a *step*, the previous change as far as this reading kept it (a one-reading spike and its
        # return count ~0, an on/off switch counts in full); a plain mean until the memory is full
        # not while the series idles (no non-zero change in the window, none now): over an idle stretch of
        # thousands of readings the RMS step would fade, and the burst after it would end in a "spike"
        lr_rate = _max(pr[P_LR_RATE], 1.0 / (cnt + 1.0))
        step = _min(st[sl, C_DCH], back) if _isfinite(back) else 0.0
        if dsc_n > 0 or step > 0:
            st[sl, C_CH_V] = st[sl, C_CH_V] + lr_rate * (step * step - st[sl, C_CH_V])
        st[sl, C_DCH] = dchange
    return sp * pr[P_ON_SPIKE], change


@njit(**_STAGE)
def _flatline(st, sl, pr, xi, ti, has_prev, mad, med):
    """flatline: the current run of readings within `tolerance` of the run's first value, by count (against the
    larger of `min_readings` and `learn_factor` x the longest run the series shows normally, a decaying memory)
    and by duration (against `min_duration`); only runs that start where the window varies and off the series'
    floor count (with `only_varying`); where the window is idle (MAD 0, an on/off series), a run at the series'
    active level (ewma's learned excursion, FL_ACTIVE_MIN) too. Then learns the run and, where a counted (or a
    learned-only: fl_ok 0.5) run ends, its length.

    gecco39: it also learns (C_FL_ALL, decaying as C_FL_MAX) the longest run off the series' floor it has shown,
    counted or not: on a quantised channel (GECCO's chlorine, conductivity, pH) the window's MAD is 0 while the value
    holds a step for hours, so those holds were never learned, and a hold of a few dozen readings just after the
    window varied scored against the bare `min_readings` bar (29 of GECCO's 310 false-positive rows at the
    leave-one-dataset-out threshold, 1 window found first). The third value returned says whether the current run
    is no longer than that; `_readings` then withholds flatline's *emission* (the decision, the tail fit, the
    likelihood's input and the re-arm memory are unchanged).

    Reads C_FL_REF, C_FL_RUN, C_FL_START, C_FL_OK, C_FL_MAX, C_LO_MIN, C_LO_Q, C_VBASE, C_COUNT, C_RES, C_AC_M, C_AC_V
    (ewma's, as before the reading: `_readings` calls flatline first; mad, med: `_scales`); P_FL_TOLERANCE,
    P_FL_DECAY, P_FL_MIN_READINGS, P_FL_LEARN, P_FL_ONLY_VARYING, P_FL_MIN_DURATION_US, P_RZ_WINDOW, P_ON_FLATLINE.

    flat40: a counted run's emission is withheld only while it is no longer than C_FL_ALL: on the reading where a
    run flatline has decided (score >= 0.5) outgrows it (a stuck sensor held longer than any hold the series has
    shown) its score is offered once more, even if it was spent (FL_FUSE_ONCE) while withheld; `_readings` clears
    the re-arm memory of the withheld rise for it and maps it by the prior tail. No state: the reading is the one
    where run > C_FL_ALL and run - 1 <= C_FL_ALL as the previous reading left it (C_FL_ALL only changes where a run
    ends).

    Writes C_FL_REF, C_FL_RUN, C_FL_START, C_FL_OK, C_FL_MAX, C_FL_ALL. Returns (the decision's score, the fusion's:
    the run counted until it first reaches FL_FUSE_ONCE, and where a decided run outgrows C_FL_ALL; whether the run is
    no longer than C_FL_ALL; whether this reading is the one where it outgrows it)."""
    tol = pr[P_FL_TOLERANCE]
    fl_ref = st[sl, C_FL_REF]
    # the longest run this series shows normally (decaying memory): a plateau of a periodic
    # series or a slow channel's hold is not a stuck sensor; the decision is at the larger of
    # min_readings and learn_factor x that
    fl_max = st[sl, C_FL_MAX] * pr[P_FL_DECAY]
    fl_eff = _max(pr[P_FL_MIN_READINGS], pr[P_FL_LEARN] * fl_max)
    fl_all_prev = st[sl, C_FL_ALL]
    fl_all = fl_all_prev * pr[P_FL_DECAY]  # gecco39: the longest run off the floor, counted or not
    same = has_prev and (abs(xi - fl_ref) <= tol)
    tf = np.float64(ti)
    if same:
        run = st[sl, C_FL_RUN] + 1.0
        fl_start = st[sl, C_FL_START]
        fl_ok = st[sl, C_FL_OK]
    else:
        prev_run = st[sl, C_FL_RUN]
        ok_prev = st[sl, C_FL_OK]
        if has_prev and ok_prev > 0:  # a counted run ended: learn it (the bar's memory at most 2x the bar; the
            # longest hold shown whole, as an uncounted one: well44, a 3W channel that held 60 readings)
            fl_max = _max(fl_max, _min(prev_run, 2.0 * fl_eff))
            fl_all = _max(fl_all, prev_run)
        elif has_prev and ok_prev < 0:  # gecco39: a run off the floor the window did not let count
            fl_all = _max(fl_all, prev_run)
        run = 1.0
        fl_start = tf
        # the window's floor (lo_min, lo_q) is read from the float32 value ring: compare the reading as the ring
        # stores it (an idle level of 0.0121 reads back as 0.01207969 beside a base of 0.19), or an on/off
        # series' idle stretch would be "off its floor" and count as a stuck sensor
        vb = st[sl, C_VBASE]
        xe = vb + np.float64(np.float32(xi - vb))
        at_floor = (xe >= st[sl, C_LO_MIN] - tol) and (xe <= st[sl, C_LO_Q])
        varying = ((mad > 0) and not at_floor) or (pr[P_FL_ONLY_VARYING] == 0)
        learn_only = False
        if mad == 0 and not varying and st[sl, C_COUNT] >= pr[P_RZ_WINDOW]:
            # an on/off series idle through most of the window (its median at the floor): a run at the active level
            # (over ACTIVE_SPLIT x the learned excursion above the floor) is a burst held at one value, and a
            # sensor stuck while the pump runs is one held far longer than the bursts are
            ac_m = st[sl, C_AC_M]
            lo_q = st[sl, C_LO_Q]
            if ac_m > 0 and (xe - lo_q) > ACTIVE_SPLIT * ac_m and med <= lo_q:
                ac_sc = _fmax(_fmax(st[sl, C_AC_V], st[sl, C_RES]), 1e-9 * abs(ac_m) + _TINY)
                varying = ac_m > ACTIVE_SEP * ac_sc and st[sl, C_COUNT] >= FL_ACTIVE_MIN
                learn_only = not varying
        # 1: counted; 0.5: learned when it ends, not counted; 0: neither (at the floor, or the window does not vary);
        # -1 (below): off the floor where the window does not vary, learned in fl_all only
        fl_ok = 1.0 if varying else (0.5 if learn_only else 0.0)
        # gecco39: -1: off the series' floor (once a window's floor is known), neither counted nor learned in fl_max
        # (a quantised channel's hold while the window's MAD is 0), learned in fl_all when it ends
        floor_known = st[sl, C_COUNT] >= pr[P_RZ_WINDOW] and st[sl, C_LO_MIN] == st[sl, C_LO_MIN]
        if fl_ok == 0 and not at_floor and floor_known:
            fl_ok = -1.0
    if run >= 2:
        rq = run - 1.0
        rs = rq / (rq + (fl_eff - 1.0))
        dur = tf - fl_start
        ds = dur / (dur + pr[P_FL_MIN_DURATION_US])
    else:
        rs = 0.0
        ds = 0.0
    fs = _max(rs, ds if _isfinite(ds) else 0.0) if fl_ok >= 1 else 0.0
    # the fusion's score: the run's rising score until it first reaches FL_FUSE_ONCE (fl_ok 2: spent), then 0 for the
    # rest of the run; before, its ever higher score was re-emitted by the re-arm gate every few dozen readings for
    # as long as the value held. The decision (the alert) stays on for the whole run
    fs_fused = fs if fl_ok < 2 else 0.0
    # flat40: the reading where a counted run flatline has decided outgrows the holds the series has shown (the one
    # before it was no longer than fl_all, this one is not): its emission was withheld until now, and its score may
    # have been spent (FL_FUSE_ONCE) meanwhile, so it is offered once more, and `_readings` clears the re-arm memory
    # of the withheld rise for it (else a stuck sensor on a channel with long holds would be decided, never scored)
    outgrew = same and fl_ok >= 1 and fs >= 0.5 and run > fl_all and run - 1.0 <= fl_all_prev
    if outgrew:
        fs_fused = fs
    if fl_ok == 1 and fs >= FL_FUSE_ONCE:
        fl_ok = 2.0
    st[sl, C_FL_MAX] = fl_max
    st[sl, C_FL_ALL] = fl_all
    if not same:
        st[sl, C_FL_REF] = xi
    st[sl, C_FL_RUN] = run
    st[sl, C_FL_START] = fl_start
    st[sl, C_FL_OK] = fl_ok
    return fs * pr[P_ON_FLATLINE], fs_fused * pr[P_ON_FLATLINE], run <= fl_all, outgrew


@njit(**_STAGE)
def _cap_hold(st, sl, xi, cnt, has_prev):
    """leak43: whether flatline's current run holds a value the series climbed into at the top of its range (a
    leaking process's CPU pinned at 100 %, a tank at its brim): the ramp's onset was the event, and each run of the
    capped value (the noise dips below the cap now and then) was emitted again by flatline after it, often long after
    the ramp's window (blind40: 637 of cloud:leak's 1,666 false-positive rows were CPU held at 100).

    Learns the reading count at which the top of reach's range (C_XR_HI, before `_reach` learns this reading) last
    rose (C_FL_TOP_N). On a run's first reading (call after `_flatline`: C_FL_RUN is this reading's run): beyond the
    top (the top moves), the count of runs begun at the top (C_FL_TOP) is reset; exactly at the unchanged top, reached
    by a step of at most FL_TOP_STEP x spike's robust scale of changes (C_DSCALE) from the previous reading (C_PREV)
    while the top rose within FL_TOP_RECENT readings, it counts one more (at most FL_TOP_VISITS). Reads C_FL_RUN,
    C_XR_HI, C_PREV, C_DSCALE; writes C_FL_TOP, C_FL_TOP_N. Returns whether the current run, two readings or more, is
    at or beyond the top with FL_TOP_VISITS runs begun there and the top risen within FL_TOP_RECENT readings;
    `_readings` then withholds flatline's emission there (its decision, and all that is learned, unchanged)."""
    if not has_prev:
        return False
    hi = st[sl, C_XR_HI]
    if xi > hi:
        st[sl, C_FL_TOP_N] = cnt
    if st[sl, C_FL_RUN] == 1.0:
        if xi > hi:
            st[sl, C_FL_TOP] = 0.0  # the top moves: no cap (yet)
        elif (xi == hi and abs(xi - st[sl, C_PREV]) <= FL_TOP_STEP * st[sl, C_DSCALE]
              and cnt - st[sl, C_FL_TOP_N] <= FL_TOP_RECENT):
            st[sl, C_FL_TOP] = _min(st[sl, C_FL_TOP] + 1.0, FL_TOP_VISITS)
    # a hold (two readings or more) at a top reached within FL_TOP_RECENT readings and revisited FL_TOP_VISITS times
    return (st[sl, C_FL_TOP] >= FL_TOP_VISITS and xi >= hi and st[sl, C_FL_RUN] >= 2.0
            and cnt - st[sl, C_FL_TOP_N] <= FL_TOP_RECENT)


@njit(**_STAGE)
def _threshold(st, sl, pr, xi):
    """threshold: 1 while the reading is outside the operator's limits, with hysteresis (once on, it stays on
    until the reading is back inside the clear limits). Reads and writes C_THR_ON; reads P_THR_HIGH, P_THR_LOW,
    P_THR_CLEAR_HIGH, P_THR_CLEAR_LOW, P_ON_THRESHOLD. Returns the score (0 or 1)."""
    if st[sl, C_THR_ON] > 0:
        inside = (not (xi > pr[P_THR_CLEAR_HIGH])) and (not (xi < pr[P_THR_CLEAR_LOW]))
        now_on = not inside
    else:
        now_on = (xi > pr[P_THR_HIGH]) or (xi < pr[P_THR_LOW])
    st[sl, C_THR_ON] = 1.0 if now_on else 0.0
    return (1.0 if now_on else 0.0) * pr[P_ON_THRESHOLD]


@njit(**_STAGE)
def _fuse(pr, s_threshold, s_robust_z, s_ewma_fused, s_spike, s_flatline):
    """The value detectors' fused raw score: the largest weighted score of the detectors that judge the reading's
    value (P_W_* weights; ewma with its level shift always counted); silence, which judges the gap before it, has
    its own re-arm memory (`_rearm`) and is folded in there. Reads no state. Returns it."""
    raw = s_threshold * pr[P_W_THRESHOLD]
    v = s_robust_z * pr[P_W_ROBUST_Z]
    if v > raw:
        raw = v
    v = s_ewma_fused * pr[P_W_EWMA]
    if v > raw:
        raw = v
    v = s_spike * pr[P_W_SPIKE]
    if v > raw:
        raw = v
    v = s_flatline * pr[P_W_FLATLINE]
    if v > raw:
        raw = v
    return raw


@njit(**_STAGE)
def _spread_input(st, sl, pr, cnt, has_prev, res, change):
    """The likelihood's change-of-spread input: the short-term mean square change against its long-run one (more
    noise, a faster period: every reading's change grows while no single reading is an outlier); increases only,
    the change winsorised at 6 long-run RMS changes so one spike is not a change of spread. Then learns both means.

    Reads C_NZ_S, C_NZ_L (res, change: `_scales`, `_spike`); P_NZ_RATE, P_NZ_THR, P_LI_MIN, P_LR_RATE.
    Writes C_NZ_S, C_NZ_L. Returns the input (0 to 0.75)."""
    nz_s = st[sl, C_NZ_S]
    nz_l = st[sl, C_NZ_L]
    ch2 = change * change if (has_prev and _isfinite(change)) else np.nan
    if ch2 == ch2 and cnt >= 64 and nz_l > 0:
        ch2 = _min(ch2, 36.0 * nz_l)
    nz_s_new = nz_s
    if ch2 == ch2:
        nz_s_new = nz_s + _max(pr[P_NZ_RATE], 1.0 / cnt) * (ch2 - nz_s)
    spread_in = 0.0
    nz_thr = pr[P_NZ_THR]
    nz_den = _fmax(nz_l, res * res)
    if nz_thr > 0 and cnt >= pr[P_LI_MIN] and nz_s_new > nz_den:  # (the root only where the ratio is > 1)
        spread_q = np.sqrt(nz_s_new / nz_den) - 1.0
        if spread_q > 0 and _isfinite(spread_q):
            spread_in = _min(spread_q / (spread_q + nz_thr), 0.75)
    if has_prev and ch2 == ch2:
        st[sl, C_NZ_S] = nz_s_new
        st[sl, C_NZ_L] = nz_l + _max(pr[P_LR_RATE], 1.0 / cnt) * (ch2 - nz_l)
    return spread_in


@njit(**_STAGE)
def _trend_input(st, sl, pr, xi, cnt, has_prev, res):
    """The likelihood's trend-aware input: the reading against a local linear prediction (Brown's double
    exponential smoothing: level 2 s1 - s2, slope a / (1 - a) (s1 - s2)), so a level shift or a change of slope on
    a trending or seasonal series shows where a level (median, EWMA) lags behind the series; its short-term mean
    (~16 readings) in units of its own long-run RMS (residuals of real series are autocorrelated, so not the
    white-noise formula alone; that is a floor). The residual is winsorised at 4 long-run RMS for the smoother and
    the mean, so one spike neither moves the prediction nor reads as a trend (square roots only on the rare
    readings that need them: the clip, and a z above 2). Then learns the smoother, the mean and both RMS.

    Reads C_TR_S1, C_TR_S2, C_TR_M, C_TR_VE, C_TR_VM (res: `_scales`); P_TR_ALPHA, P_TR_RATE, P_TR_SLOPE,
    P_TR_THR, P_TR_W, P_LI_MIN, P_LR_RATE. Writes C_TR_S1, C_TR_S2, C_TR_M, C_TR_VE, C_TR_VM.
    Returns the input (0 to TREND_CAP)."""
    tr_a = pr[P_TR_ALPHA]
    tr_r = pr[P_TR_RATE]
    tr_s1 = st[sl, C_TR_S1]
    tr_s2 = st[sl, C_TR_S2]
    tr_d = tr_s1 - tr_s2
    tr_ve = st[sl, C_TR_VE]
    tr_vm = st[sl, C_TR_VM]
    tr_step = tr_d + pr[P_TR_SLOPE] * tr_d  # prediction - s1: the smoothed difference and the slope
    tr_e = xi - (tr_s1 + tr_step) if has_prev else 0.0
    tr_ec = tr_e
    if cnt >= 64 and tr_e * tr_e > 16.0 * tr_ve and tr_ve > 0:
        tr_lim = 4.0 * np.sqrt(tr_ve)
        tr_ec = _min(_max(tr_e, -tr_lim), tr_lim)
    tr_m = st[sl, C_TR_M] + tr_r * (tr_ec - st[sl, C_TR_M]) if has_prev else 0.0
    trend_in = 0.0
    tr_thr = pr[P_TR_THR]
    if tr_thr > 0 and cnt >= pr[P_LI_MIN]:
        # the mean's scale: its long-run RMS, floored by what white residuals would give (W = r / (2 - r)
        # of their variance) and by the resolution; q = z - 2 increases only (a z of 2 is common)
        tr_sc2 = _fmax(_fmax(tr_vm, _fmax(tr_ve, res * res) * pr[P_TR_W]), _TINY)
        if tr_m * tr_m > 4.0 * tr_sc2:
            trend_q = abs(tr_m) / np.sqrt(tr_sc2) - 2.0
            if trend_q > 0 and _isfinite(trend_q):
                trend_in = _min(trend_q / (trend_q + tr_thr), TREND_CAP)
    if has_prev:
        tr_rate = _max(pr[P_LR_RATE], 1.0 / cnt)
        tr_e2 = tr_e * tr_e
        tr_m2 = tr_m * tr_m
        if cnt >= 64:
            if tr_ve > 0:
                tr_e2 = _min(tr_e2, 36.0 * tr_ve)
            if tr_vm > 0:
                tr_m2 = _min(tr_m2, 36.0 * tr_vm)
        if _isfinite(tr_e2) and _isfinite(tr_m2):
            tr_x = tr_s1 + tr_a * (tr_step + tr_ec)  # s1 + a (prediction + residual - s1)
            st[sl, C_TR_S1] = tr_x
            st[sl, C_TR_S2] = tr_s2 + tr_a * (tr_x - tr_s2)
            st[sl, C_TR_M] = tr_m
            st[sl, C_TR_VE] = tr_ve + tr_rate * (tr_e2 - tr_ve)
            st[sl, C_TR_VM] = tr_vm + tr_rate * (tr_m2 - tr_vm)
    else:  # the smoother starts at the first value, slope 0
        st[sl, C_TR_S1] = xi
        st[sl, C_TR_S2] = xi
    return trend_in


@njit(**_STAGE)
def _season_saturday(se, sl, xi, lv, m, w1, b0, b1, gap):
    """road33: a reading of the first judged Saturday (`_season_input`), beside what it does as before: its squared
    residual against the weekday profile (`e`, clipped at 36 x the weekdays' mean square as the RMS's update clips)
    into the day's tally, and the reading into the weekend profile, which follows this first pass as the series'
    first day's bins follow theirs (an unseen bin starts at the reading's distance from the level; a seen one moves by
    its share of the gap, its residual winsorised at 4 x the weekdays' RMS). Runs one day per series at most."""
    svm = np.float64(se[sl, SE_SVM])
    m2 = m * m
    if svm > 0:
        m2 = _min(m2, 36.0 * svm)
    se[sl, SE_WO] = np.float32(np.float64(se[sl, SE_WO]) + m2)
    se[sl, SE_WC] = np.float32(np.float64(se[sl, SE_WC]) + 1.0)
    k0 = U_SE_W0 + b0
    k1 = U_SE_W0 + b1
    q0 = np.float64(se[sl, k0])
    q1 = np.float64(se[sl, k1])
    p0 = q0 if q0 == q0 else (q1 if q1 == q1 else 0.0)
    p1 = q1 if q1 == q1 else p0
    ew = xi - (lv + ((1.0 - w1) * p0 + w1 * p1))
    sve = np.float64(se[sl, SE_SVE])
    if sve > 0 and ew * ew > 16.0 * sve:
        lim = 4.0 * np.sqrt(sve)
        ew = _min(_max(ew, -lim), lim)
    kb = gap * PER_BIN_US
    g = kb if kb < 1.0 else 1.0
    se[sl, k0] = np.float32(q0 + g * (1.0 - w1) * ew) if q0 == q0 else np.float32(xi - lv)
    se[sl, k1] = np.float32(q1 + g * w1 * ew) if q1 == q1 else np.float32(xi - lv)


@njit(**_STAGE)
def _profile_span(se, sl):
    """The daily profile's range (highest bin - lowest, NaN bins skipped): how far above its noise a series' day
    is. Read by the seasonal input's amplitude gate and lane34's, only on their rare readings."""
    lo = np.inf
    hi = -np.inf
    for b in range(SEASON_BINS):
        v = np.float64(se[sl, b])
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    return hi - lo


@njit(**_STAGE)
def _profile_at(se, sl, base, b0, b1, w1):
    """road33: a seasonal profile's value between its bins b0 and b1 (weight w1 on b1), from column `base` of the
    seasonal table; a bin not seen yet (NaN) takes its neighbour's, 0 where neither is seen. One place for the
    judged days' predictions (Sunday's and Monday's tallies read two profiles each)."""
    q0 = np.float64(se[sl, base + b0])
    q1 = np.float64(se[sl, base + b1])
    p0 = q0 if q0 == q0 else (q1 if q1 == q1 else 0.0)
    p1 = q1 if q1 == q1 else p0
    return (1.0 - w1) * p0 + w1 * p1


@njit(**_STAGE)
def _tally_pair(se, sl, e, w, c_e, c_w, c_n):
    """road33: one judged-day reading's two squared residuals (`e` against one profile, `w` against the other), each
    clipped at 36 x the weekdays' mean square (one wild reading does not decide the judgement), added to the tally
    columns `c_e`, `c_w` and their count `c_n` (Sunday's and Monday's tallies alike)."""
    sve = np.float64(se[sl, SE_SVE])
    e2 = e * e
    w2 = w * w
    if sve > 0:
        e2 = _min(e2, 36.0 * sve)
        w2 = _min(w2, 36.0 * sve)
    se[sl, c_e] = np.float32(np.float64(se[sl, c_e]) + e2)
    se[sl, c_w] = np.float32(np.float64(se[sl, c_w]) + w2)
    se[sl, c_n] = np.float32(np.float64(se[sl, c_n]) + 1.0)


@njit(**_STAGE)
def _season_sunday(se, sl, xi, lv, lvs, e, w1, b0, b1):
    """road33: a reading of the judged weekend's Sunday (`_season_input`): its squared residual against the weekday
    profile (`e`) and against the Saturday's profile (the weekend bins, not taught here: a profile that followed the
    Sunday would predict any slow series from its own last hour), each clipped at 36 x the weekdays' mean square,
    into the tally. A week shows as a Sunday the Saturday predicts better than the weekdays do; a weather front
    that made the Saturday unusual does not predict the Sunday."""
    _tally_pair(se, sl, e, xi - (lvs + _profile_at(se, sl, U_SE_W0, b0, b1, w1)), SE_WS, SE_WSW, SE_WSC)


@njit(**_STAGE)
def _season_monday(se, sl, xi, lvs, w1, b0, b1):
    """road33: a reading of the Monday after the judged weekend (`_season_input`): its squared residuals against the
    weekday profile as the Saturday found it and against that weekend's profile (both from the level the Saturday
    found), each clipped at 36 x the weekdays' mean square, into the tally. A week shows as a Monday the weekdays
    predict better than the weekend does; a series that changed on the Saturday (a new level, a new day) and stayed
    changed is predicted better by its weekend."""
    _tally_pair(se, sl, xi - (lvs + _profile_at(se, sl, U_SE_S0, b0, b1, w1)),
                xi - (lvs + _profile_at(se, sl, U_SE_W0, b0, b1, w1)), SE_WM, SE_WMW, SE_WMC)


@njit(**_STAGE)
def _week_pending(se, sl, wk):
    """lane35: does the series' last tallied weekend (road33's tallies, kept until the next judgement starts) show a
    week, though more weakly than road33's judgement asks (a road on a clock 4-8 hours west of UTC: its UTC Saturday
    begins with a Friday evening's rush, its UTC Monday with a Sunday evening)? Its Saturday's mean squared residual
    against the weekday profile over LANE_SAT_K x the weekdays' (the Friday's, on the day after the judgement; on a
    Friday being tallied, `wk` 0.5, the weekdays' as that Saturday found them), its Sunday predicted better by the
    Saturday's profile than by the weekdays', and its Monday better by the weekdays' profile than by the weekend's.
    A series that has not been tallied, or whose weekend was an ordinary day, has no such week."""
    wc = np.float64(se[sl, SE_WC])
    if wc < WEEKLY_MIN or np.float64(se[sl, SE_WSC]) < WEEKLY_MIN or np.float64(se[sl, SE_WMC]) < WEEKLY_MIN:
        return False
    ref = np.float64(se[sl, SE_SVM])
    wfc = np.float64(se[sl, SE_WFC])
    if wk == 0.0 and wfc >= WEEKLY_MIN:
        ref = _min(ref, np.float64(se[sl, SE_WF]) / wfc)
    return (np.float64(se[sl, SE_WO]) > LANE_SAT_K * wc * ref
            and np.float64(se[sl, SE_WS]) > np.float64(se[sl, SE_WSW])
            and np.float64(se[sl, SE_WM]) < np.float64(se[sl, SE_WMW]))


@njit(**_STAGE)
def _lane(st, se, sl, pr, ec, age, wk, rms, bk, dow):
    """lane34's score-only statistic: a sustained departure from the series' own expected value (a lane closed: a
    road's occupancy x 1.5-2.5 or speed x 0.6-0.8 from an onset on), which the detectors' windows take for a rush
    hour and the seasonal score's short-term mean (~16 readings) judges against a scale that counts every rush
    hour's mismatch. The seasonal residual `ec` (clipped at 4 long-run RMS, `_season_input`) is averaged over hours
    (LANE_RATE) and judged in units of that slow mean's own long-run RMS: the series' day-to-day variation of it (a
    road's demand differs by +-15 % from day to day, so a plain CUSUM of the residual would fire on clean days).
    Scored on a series judged weekly (road33); with LANE_PENDING (lane35) also, Tuesday to Friday (`dow`, UTC), on one
    whose judgement is pending but whose last tallied weekend shows a week (`_week_pending`: a road whose week the
    judgement has not settled yet); with LANE_ANY_SEASONAL, any whose learned day's range is over
    the seasonal score's amplitude gate x `rms` (a series whose profile explains its day); as
    1 - exp(-z^2 / 2), when z reaches the bar (LANE_Z, then LANE_STEP x the last emission's z until z falls below
    LANE_RESET: one emission per departure and a few as it deepens, not one a reading for as long as it lasts).
    It decides nothing: `_readings` emits the larger of it and `_calibrate`'s score, through the second stage.

    Reads and writes C_LC_M, C_LC_V, C_LC_N, C_LC_BAR. Returns the score (0 where not emitted)."""
    lm = st[sl, C_LC_M] + LANE_RATE * (ec - st[sl, C_LC_M])
    st[sl, C_LC_M] = lm
    if age < DAY_US:
        return 0.0
    lv = st[sl, C_LC_V]
    ln = st[sl, C_LC_N]
    out = 0.0
    vb = np.float64(se[sl, bk])
    if age >= LANE_START_US and ln >= LANE_MIN_N and lv > 0 and vb > 0:
        z = abs(lm) / np.sqrt(_fmax(vb, LANE_FLOOR * lv))
        bar = st[sl, C_LC_BAR]
        gated = wk == 2.0
        if z >= _max(bar, LANE_Z) and not gated:
            if LANE_PENDING and wk < 2.0 and U_MON < dow < U_SAT:
                gated = _week_pending(se, sl, wk)
            elif LANE_ANY_SEASONAL:
                gated = _profile_span(se, sl) >= pr[P_SE_AMP] * rms
        if z < LANE_RESET:
            st[sl, C_LC_BAR] = 0.0
        elif gated and z >= _max(bar, LANE_Z):
            out = 1.0 - _fmax(math.exp(-0.5 * z * z), _TAIL_FLOOR)
            st[sl, C_LC_BAR] = LANE_STEP * z
    m2 = lm * lm
    if ln >= 64 and lv > 0:
        m2 = _min(m2, LANE_WINSOR * lv)
    st[sl, C_LC_V] = lv + _max(pr[P_LR_RATE], 1.0 / (ln + 1.0)) * (m2 - lv)
    b2 = lm * lm
    if vb > 0:
        b2 = _min(b2, LANE_WINSOR * vb)
        se[sl, bk] = np.float32(vb + LANE_BIN_RATE * (b2 - vb))
    else:
        se[sl, bk] = np.float32(b2)
    st[sl, C_LC_N] = ln + 1.0
    return out


@njit(**_STAGE)
def _count_drop(st, se, sl, xi, ti, gap, has_prev):
    """drop43's score-only statistic: a count series that loses part of its events (a footfall counter, a ticket
    gate or an upstream system that stops reporting one client platform: x 0.3-0.7 from an onset on, sustained),
    which the value detectors take for a quiet hour and lane34's additive residual for its day-to-day variation. A
    count's day is a product (level x hour-of-day shape), so the evidence is a ratio: the slow sums (~2 h,
    CD_RATE_PER_US) of the counts and of the hour-of-day profile's expected counts (24 UTC hours, each the mean count
    at that hour, moved by CD_GAMMA of a pass of the day), and z = -ln(observed / expected) in units of its own
    day-to-day RMS at that hour (floored at CD_FLOOR x the all-day one) together with the Poisson variance of the
    observed sum (a count of a few events a bucket says little: a ratio of 0.5 over 2 hours of 3 events a bucket is
    ~3 of them). Drops only (a surge is the value detectors'), and only Tuesday to Thursday of the UTC calendar: no
    place's weekend (a service's weekend is 0.5-1.3 x its weekdays) nor Monday morning falls there, and a daily
    profile cannot tell a weekend from a drop. Scored from CD_START_US of the series' age, as 1 - exp(-z^2 / 2) where
    z reaches the bar (CD_Z, then CD_STEP x the last emission's z until z falls below CD_RESET: lane34's emission).
    Only on a series every reading of which so far is a non-negative integer (a count; NaN and inf readings are
    skipped).
    It decides nothing: `_readings` emits the larger of it and the other scores, through the second stage.

    Reads and writes C_CD_* and the slot's `se` columns c0..c23, d0..d23. Returns the score (0 where not emitted)."""
    if st[sl, C_CD_NO] != 0.0 or not _isfinite(xi):
        return 0.0
    if xi < 0.0 or xi != math.floor(xi):
        st[sl, C_CD_NO] = 1.0
        return 0.0
    if not has_prev:
        st[sl, C_CD_T0] = np.float64(ti)
    if ti >= 0:  # the hour of the UTC day and the weekday (unsigned: `_season_input` says why)
        ubi = np.uint64(ti) // U_BIN_US
    else:
        ubi = np.uint64((ti // BIN_US) % (7 * SEASON_BINS))  # the same hour and weekday (whole weeks added)
    h = ubi % U_SEASON_BINS
    dow = (ubi // U_SEASON_BINS + U_DOW0) % U_WEEK
    p = np.float64(se[sl, U_CD_P0 + h])
    kb = gap * PER_BIN_US
    if not p == p:  # an hour not seen yet starts at this count
        se[sl, U_CD_P0 + h] = np.float32(xi)
        return 0.0
    k = _min(gap * CD_RATE_PER_US, CD_RATE_MAX)
    a = st[sl, C_CD_A] + k * (xi - st[sl, C_CD_A])
    b = st[sl, C_CD_B] + k * (p - st[sl, C_CD_B])
    st[sl, C_CD_A] = a
    st[sl, C_CD_B] = b
    se[sl, U_CD_P0 + h] = np.float32(p + CD_GAMMA * (kb if kb < 1.0 else 1.0) * (xi - p))
    age = np.float64(ti) - st[sl, C_CD_T0]
    if age < DAY_US or not b > 0:
        return 0.0
    lr = math.log((a + 0.5 * k) / (b + 0.5 * k))
    v = np.float64(se[sl, U_CD_V0 + h])
    va = st[sl, C_CD_V]
    out = 0.0
    if age >= CD_START_US and v > 0 and U_TUE <= dow <= U_THU:
        z = -lr / np.sqrt(_fmax(v, CD_FLOOR * va) + 0.5 * k / b)
        bar = st[sl, C_CD_BAR]
        if z < CD_RESET:
            st[sl, C_CD_BAR] = 0.0
        elif z >= _max(bar, CD_Z):
            out = 1.0 - _fmax(math.exp(-0.5 * z * z), _TAIL_FLOOR)
            st[sl, C_CD_BAR] = CD_STEP * z
    l2 = lr * lr
    if v > 0:
        se[sl, U_CD_V0 + h] = np.float32(v + CD_BIN_RATE * (_min(l2, CD_WINSOR * v) - v))
    else:
        se[sl, U_CD_V0 + h] = np.float32(l2)
    st[sl, C_CD_V] = l2 if va <= 0 else va + CD_BIN_RATE / 8.0 * (_min(l2, CD_WINSOR * va) - va)
    return out


@njit(**_STAGE)
def _day_drift(st, se, sl, xi, ti):
    """drift46's score-only statistic: a slow drift (a sensor's calibration creeping by 8-15 noise SDs over hours),
    which every detector's window follows and the seasonal input's one-pass profile absorbs. Each completed 30-minute
    bin's mean of the UTC day is compared with yesterday's mean of the same bin (the daily swing cancels exactly),
    the readings winsorised at yesterday's bin mean +- DD_CLIP x the series' mean |departure| from it (a burst moves a
    bin's mean a bounded amount); D = today's - yesterday's, and z = |D's short mean - its slow level| in units of
    D's own RMS (not learned above DD_FREEZE). It emits DD_EMIT once a series, where z is DD_RATIO x the largest z the
    series showed before its last DD_LAG D's (its own record), after DD_WARM readings scored, and where D's short mean
    stands DD_SMOOTH x the RMS of D's bin-to-bin change off its level (a drift's departure grows smoothly; a different
    day's rush hours make D jump from bin to bin). A bin is compared only where it ends between DD_WEEK_LO and
    DD_WEEK_HI hours into the UTC week (Tuesday 12:00 to Friday 12:00: both days a weekday in any local time), and the
    winsorising scale learns only from readings there: a road's first weekend against its Friday, and the Tuesday
    after it, were the clean traffic copies' emissions (drift45; benchmarks/README.md, drift46).
    It decides nothing: `_readings` emits the larger of it and the anomaly_score.

    Reads and writes C_DD_* and the slot's `se` columns y0..y47. Returns the score (0 where not emitted)."""
    if st[sl, C_DD_DONE] != 0.0 or not _isfinite(xi) or ti < -DD_SHIFT_US:
        return 0.0
    ubi = np.uint64(ti + DD_SHIFT_US) // U_DD_BIN_US  # the bin's serial (30-minute bins since DD_SHIFT_US before)
    serial = np.float64(ubi)
    if st[sl, C_DD_BIN] != serial + 1.0:
        c = st[sl, C_DD_C]
        if c > 0:  # the open bin completed
            ob = np.uint64(st[sl, C_DD_BIN] - 1.0)
            od = np.float64(ob // U_DD_BINS)
            ko = ob % U_DD_BINS
            if od != st[sl, C_DD_DAY]:
                st[sl, C_DD_MP] = st[sl, C_DD_MC] if od == st[sl, C_DD_DAY] + 1.0 else 0.0
                st[sl, C_DD_MC] = 0.0
                st[sl, C_DD_DAY] = od
            mean = st[sl, C_DD_S] / c
            if st[sl, C_DD_MC] == 0.0 and st[sl, C_DD_MP] == 0.0 and st[sl, C_DD_ND] == 0.0:
                st[sl, C_DD_BASE] = mean
            base = st[sl, C_DD_BASE]
            week_h = np.float64(((ob + U_ONE) // U_DD_BINS + U_DOW0) % U_WEEK) * 24.0 \
                + np.float64((ob + U_ONE) % U_DD_BINS) * 0.5
            inside = DD_WEEK_LO <= week_h < DD_WEEK_HI
            if not inside:
                st[sl, C_DD_Z] = 0.0
                st[sl, C_DD_SM] = 0.0
            if inside and (np.int64(st[sl, C_DD_MP]) >> np.int64(ko)) & 1:
                # both bins' offsets as the table holds them: a day that repeats yesterday exactly departs by 0
                dd = np.float64(np.float32(mean - base)) - np.float64(se[sl, U_DD_Y0 + ko])
                nd = st[sl, C_DD_ND]
                if nd > 0 and st[sl, C_DD_Z] <= DD_FREEZE:
                    ndv = st[sl, C_DD_NDV] + 1.0
                    st[sl, C_DD_NDV] = ndv
                    e = dd - st[sl, C_DD_DP]
                    st[sl, C_DD_DV] += (e * e - st[sl, C_DD_DV]) / _min(ndv, DD_DV_N)
                st[sl, C_DD_DP] = dd
                if nd == 0:
                    st[sl, C_DD_M] = dd
                    st[sl, C_DD_LV] = dd
                else:
                    m = st[sl, C_DD_M] + (dd - st[sl, C_DD_M]) / DD_SHORT
                    lv = st[sl, C_DD_LV]
                    d = m - lv
                    v = st[sl, C_DD_V]
                    nv = st[sl, C_DD_NV]
                    dc = d
                    zn = 0.0
                    if nv >= DD_MIN_D and v > 0:
                        r = _max(np.sqrt(v), DD_RES_X * st[sl, C_RES])
                        zn = abs(d) / r
                        dc = _max(_min(d, 4.0 * r), -4.0 * r)
                    if not (nv >= DD_MIN_D and zn > DD_FREEZE):
                        nv += 1.0
                        st[sl, C_DD_NV] = nv
                        st[sl, C_DD_V] = v + (dc * dc - v) / _min(nv, DD_RMS_N)
                    st[sl, C_DD_M] = m
                    st[sl, C_DD_LV] = lv + (dd - lv) / DD_SLOW
                    j = C_DD_R0 + np.int64(nd) % DD_LAG  # the record takes the z DD_LAG D's old
                    st[sl, C_DD_REC] = _max(st[sl, C_DD_REC], st[sl, j])
                    st[sl, j] = zn
                    st[sl, C_DD_Z] = zn
                    dv = st[sl, C_DD_DV]
                    dv = _max(np.sqrt(dv), DD_RES_X * st[sl, C_RES]) if dv > 0 else 0.0
                    st[sl, C_DD_SM] = abs(d) / dv if dv > 0 else 0.0
                st[sl, C_DD_ND] = nd + 1.0
            se[sl, U_DD_Y0 + ko] = np.float32(mean - base)
            st[sl, C_DD_MC] = np.float64(np.int64(st[sl, C_DD_MC]) | (np.int64(1) << np.int64(ko)))
        st[sl, C_DD_BIN] = serial + 1.0
        st[sl, C_DD_S] = 0.0
        st[sl, C_DD_C] = 0.0
    day = np.float64(ubi // U_DD_BINS)
    k = ubi % U_DD_BINS
    if day == st[sl, C_DD_DAY]:
        mask = st[sl, C_DD_MP]
    elif day == st[sl, C_DD_DAY] + 1.0:
        mask = st[sl, C_DD_MC]
    else:
        mask = 0.0
    x = xi
    if (np.int64(mask) >> np.int64(k)) & 1:  # winsorised at yesterday's bin mean +- DD_CLIP x the scale
        y = st[sl, C_DD_BASE] + np.float64(se[sl, U_DD_Y0 + k])
        e = xi - y
        mad = st[sl, C_DD_MAD]
        if mad > 0:
            x = y + _max(_min(e, DD_CLIP * mad), -DD_CLIP * mad)
            wk = np.float64((ubi // U_DD_BINS + U_DOW0) % U_WEEK) * 24.0 + np.float64(k) * 0.5 \
                + np.float64(np.uint64(ti) % U_DD_BIN_US) / 3.6e9
            if DD_WEEK_LO <= wk < DD_WEEK_HI:
                nm = st[sl, C_DD_NM] + 1.0
                st[sl, C_DD_NM] = nm
                st[sl, C_DD_MAD] = mad + (_min(abs(e), 4.0 * mad) - mad) / _min(nm, DD_MAD_N)
        else:
            st[sl, C_DD_MAD] = abs(e)
            st[sl, C_DD_NM] = 1.0
    st[sl, C_DD_S] += x
    st[sl, C_DD_C] += 1.0
    z = st[sl, C_DD_Z]
    if z > 0:
        nz = st[sl, C_DD_NZ] + 1.0
        st[sl, C_DD_NZ] = nz
        if nz > DD_WARM and z >= DD_RATIO * _max(st[sl, C_DD_REC], 1e-9) and st[sl, C_DD_SM] >= DD_SMOOTH:
            st[sl, C_DD_DONE] = 1.0
            return DD_EMIT
    return 0.0


@njit(**_STAGE)
def _resid_regime(st, sl, y, kl):
    """level36 (resid35's idea): the series less its daily profile (`y`: the reading less the seasonal stage's
    profile at its time, from the profile's second day on; `_season_input`, before `_lane` counts the reading in
    C_LC_N), its own level and the regime of what that leaves. The level moves by `kl` (RQ_LEVEL_PER_US of this gap,
    ~2 h: level36, was the seasonal level's ~6 h) of the residual clipped at RQ_CLIP robust scales (so a server's
    burst of a few readings at 2 x its level, 30-60 of its noise scales, hardly moves it: the seasonal level's clip
    is 4 RMS, and a burst's squares make that RMS); the regime is the median |residual| and the median |change of
    residual|, each tracked by a multiplicative step (up by RQ_RATE of itself where the new value is above it, down
    where below: the median's fixed point; a few readings move it a few steps). For i.i.d. noise sqrt(2) x the first
    ~ the second (as level34's MAD and median |change|); what a profile leaves on a road (each day's demand x
    0.85-1.15) or an AR(1) series moves slowly, so
    its changes are small beside it.

    Reads and writes C_RQ_L, C_RQ_A, C_RQ_D, C_RQ_E; reads C_LC_N."""
    rl = st[sl, C_RQ_L]
    if rl != rl:
        st[sl, C_RQ_L] = y
        return
    ln = st[sl, C_LC_N]
    eta = _min(_max(RQ_RATE, 2.0 / (ln + 1.0)), 0.25)
    r = y - rl
    ra = st[sl, C_RQ_A]
    rc = r
    if ra > 0 and ln >= 64:
        lim = RQ_CLIP * 1.4826 * ra
        rc = _min(_max(r, -lim), lim)
    st[sl, C_RQ_L] = rl + kl * rc
    a = abs(r)
    st[sl, C_RQ_A] = a if ra <= 0 else (ra * (1.0 + eta) if a > ra else ra * (1.0 - eta))
    pe = st[sl, C_RQ_E]
    if pe == pe:
        dd = abs(r - pe)
        rd = st[sl, C_RQ_D]
        st[sl, C_RQ_D] = dd if rd <= 0 else (rd * (1.0 + eta) if dd > rd else rd * (1.0 - eta))
    st[sl, C_RQ_E] = r


@njit(**_STAGE)
def _season_input(st, se, sl, pr, xi, ti, gap, cnt, has_prev, res):
    """The likelihood's daily-seasonal score: the reading against a slow level plus a profile of the UTC day
    (additive Holt-Winters: SEASON_BINS bins, interpolated linearly between their centres), so a changed day (a
    halved period, a rate that halves) shows where the trend input's local prediction follows the series within
    ~10 readings and the detectors' windows hold the whole swing. Its short-term mean (the trend input's memory,
    ~16 readings) in units of its own long-run RMS, floored as there, scored q / (q + likelihood_season_threshold)
    for q = z - 2 (`_likelihood` takes the larger of it and its own score: a z already, it is not smoothed again
    nor learned into the input's mean); from SEASON_START_US of the series' own time on (a day of profile, a
    quarter of one of the RMS), so a run of minutes or hours never gets it; only where the learned day's range is
    at least likelihood_season_min_amplitude long-run RMS residuals (a road, an online rate; not a weather-driven
    series with a weak day). The level and the profile move in time, not per reading: the level by gap /
    likelihood_season_level_hours, a bin by its share of likelihood_season_gamma per pass of the day (1 in the
    first day: each bin starts at its first pass's mean); the residual is winsorised at 4 long-run RMS for both, so
    one spike teaches neither. The bins, the mean and the RMS are float32 (`se`: 452 B a series with the weekly
    judgement, road33, and lane34's per-hour mean squares), the level and the series' first timestamp float64
    state.

    Reads C_SE_L, C_SE_T0 and the slot's `se` row (res: `_scales`; gap: `_silence`); P_SE_THR, P_SE_PER_US,
    P_SE_GAMMA, P_SE_AMP, P_TR_RATE, P_TR_W, P_LI_MIN, P_LR_RATE. Writes the same. Returns the score (0 to
    SEASON_CAP), and lane34's score (`_lane`, 0 where not emitted)."""
    if not pr[P_SE_THR] > 0:
        return 0.0, 0.0
    if not has_prev:
        st[sl, C_SE_L] = xi
        st[sl, C_SE_T0] = np.float64(ti)
        return 0.0, 0.0
    # the bin centre at or before the reading (bins since the epoch: one 64-bit division a reading; a day is
    # SEASON_BINS bins exactly, so its remainder is the bin of the day) and the weight of the next
    ph = ti - HALF_BIN_US
    if ph >= 0:  # unsigned (U_BIN_US says why); below, the signed floor for a time before 1970-01-01 00:30 UTC
        up = np.uint64(ph)
        ubi = up // U_BIN_US
        w1 = np.float64(up - ubi * U_BIN_US) * PER_BIN_US
        b0 = ubi % U_SEASON_BINS
        day0 = ubi // U_SEASON_BINS
    else:
        bi = ph // BIN_US
        w1 = np.float64(ph - bi * BIN_US) * PER_BIN_US
        b0 = np.uint64(bi % SEASON_BINS)
        day0 = np.uint64((bi // SEASON_BINS) % 7)  # the same weekday (a multiple of 7 days added)
    b1 = b0 + U_ONE if b0 + U_ONE < U_SEASON_BINS else U_ZERO
    n = np.float64(se[sl, SE_N])
    # road33: is the series weekly? Judged once, on its first Saturday (UTC) with a learned RMS: that day is scored and
    # learned as before, and beside it tallied against the weekday profile and learned into a weekend profile; if it
    # was another kind of day (its mean squared residual over WEEKLY_K x the weekdays'), the weekday bins and the
    # RMS are put back as the Saturday found them and from then on Saturdays and Sundays have their own profile;
    # otherwise (every series without a week) nothing of this is read again: the profile and scores are as before
    wk = st[sl, C_SE_WK]
    o0 = U_ZERO
    o1 = U_ZERO
    sat = False
    fri = False
    dow0 = U_ZERO
    if wk != 3.0:
        dow0 = (day0 + U_DOW0) % U_WEEK
        if wk == 0.0:
            # a Friday from its first hours on, with a learned RMS: tally it (the day the Saturday is judged against)
            if dow0 == U_FRI and b0 < U_JUDGE_BINS and n >= 64:
                se[sl, SE_WF] = 0.0
                se[sl, SE_WFC] = 0.0
                wk = 0.5
                st[sl, C_SE_WK] = wk
        elif wk == 0.5 and dow0 != U_FRI:
            if dow0 == U_SAT and b0 < U_JUDGE_BINS:  # the Saturday after it: judge it
                for b in range(SEASON_BINS):
                    se[sl, SE_S0 + b] = se[sl, b]
                se[sl, SE_SVE] = se[sl, SE_VE]
                se[sl, SE_SVM] = se[sl, SE_VM]
                se[sl, SE_SN] = se[sl, SE_N]
                st[sl, C_SE_LS] = st[sl, C_SE_L]
                se[sl, SE_WO] = 0.0
                se[sl, SE_WC] = 0.0
                se[sl, SE_WS] = 0.0
                se[sl, SE_WSW] = 0.0
                se[sl, SE_WSC] = 0.0
                se[sl, SE_WM] = 0.0
                se[sl, SE_WMW] = 0.0
                se[sl, SE_WMC] = 0.0
                wk = 1.0
            else:  # a gap over Saturday's first hours: the next Friday
                wk = 0.0
            st[sl, C_SE_WK] = wk
        elif wk == 1.0 and dow0 < U_SAT and dow0 != U_MON:  # the judged weekend and the Monday after it are over
            wc = np.float64(se[sl, SE_WC])
            wsc = np.float64(se[sl, SE_WSC])
            wfc = np.float64(se[sl, SE_WFC])
            wmc = np.float64(se[sl, SE_WMC])
            svm = np.float64(se[sl, SE_SVM])
            if wc < WEEKLY_MIN or wsc < WEEKLY_MIN or wfc < WEEKLY_MIN or wmc < WEEKLY_MIN:  # a gap: the next one
                wk = 0.0
            elif (np.float64(se[sl, SE_WO]) > WEEKLY_K * wc * _min(svm, np.float64(se[sl, SE_WF]) / wfc)
                  and np.float64(se[sl, SE_WS]) > WEEKLY_K2 * np.float64(se[sl, SE_WSW])
                  and WEEKLY_K2 * np.float64(se[sl, SE_WM]) < np.float64(se[sl, SE_WMW])):
                for b in range(SEASON_BINS):
                    se[sl, b] = se[sl, SE_S0 + b]
                se[sl, SE_VE] = se[sl, SE_SVE]
                se[sl, SE_VM] = se[sl, SE_SVM]
                se[sl, SE_N] = se[sl, SE_SN]
                st[sl, C_SE_L] = st[sl, C_SE_LS]
                n = np.float64(se[sl, SE_N])
                wk = 2.0
            else:  # not weekly: judged again while the series is young (a profile still learning its weekdays
                # mispredicts a Friday too), then never
                wk = 0.0 if np.float64(ti) - st[sl, C_SE_T0] < JUDGE_US else 3.0
            st[sl, C_SE_WK] = wk
        if wk == 2.0:  # each of the two bins in its own day's profile
            dow1 = dow0 if b1 != U_ZERO else (dow0 + U_ONE) % U_WEEK
            o0 = U_SE_W0 if dow0 >= U_SAT else U_ZERO
            o1 = U_SE_W0 if dow1 >= U_SAT else U_ZERO
        elif wk == 1.0:
            sat = (b1 != U_ZERO or dow0 != U_SUN)  # the judged weekend's and Monday's (not the half hour by midnight)
        elif wk == 0.5:
            fri = True
    c0 = b0 + o0
    c1 = b1 + o1
    q0 = np.float64(se[sl, c0])
    q1 = np.float64(se[sl, c1])
    # both bins seen (every reading but a few in the first pass of the day): one test, not a choice per value
    seen = q0 == q0 and q1 == q1
    if seen:
        p0 = q0
        p1 = q1
    else:  # a bin not seen yet takes (a weekend's: the weekdays' at its hour, else) its neighbour's value, or 0
        r0 = q0
        r1 = q1
        if o0 != U_ZERO and not r0 == r0:
            r0 = np.float64(se[sl, b0])
        if o1 != U_ZERO and not r1 == r1:
            r1 = np.float64(se[sl, b1])
        p0 = r0 if r0 == r0 else (r1 if r1 == r1 else 0.0)
        p1 = r1 if r1 == r1 else p0
    lv = st[sl, C_SE_L]
    e = xi - (lv + ((1.0 - w1) * p0 + w1 * p1))
    ec = e
    if n >= 64:
        ve = np.float64(se[sl, SE_VE])
        if e * e > 16.0 * ve and ve > 0:
            lim = 4.0 * np.sqrt(ve)
            ec = _min(_max(e, -lim), lim)
    m0 = np.float64(se[sl, SE_M])
    m = m0 + pr[P_TR_RATE] * (ec - m0)
    if sat and _isfinite(m):
        lvs = st[sl, C_SE_LS]
        if dow0 == U_SAT:
            _season_saturday(se, sl, xi, lvs, m, w1, b0, b1, gap)
        elif dow0 == U_SUN:
            _season_sunday(se, sl, xi, lv, lvs, e, w1, b0, b1)
        else:
            _season_monday(se, sl, xi, lvs, w1, b0, b1)
    elif fri and _isfinite(m):
        vm = np.float64(se[sl, SE_VM])
        m2 = _min(m * m, 36.0 * vm) if vm > 0 else m * m
        se[sl, SE_WF] = np.float32(np.float64(se[sl, SE_WF]) + m2)
        se[sl, SE_WFC] = np.float32(np.float64(se[sl, SE_WFC]) + 1.0)
    age = np.float64(ti) - st[sl, C_SE_T0]
    season_in = 0.0
    if age >= SEASON_START_US and n >= 64 and cnt >= pr[P_LI_MIN]:
        ve = np.float64(se[sl, SE_VE])
        vm = np.float64(se[sl, SE_VM])
        sc2 = _fmax(_fmax(vm, _fmax(ve, res * res) * pr[P_TR_W]), _TINY)
        if m * m > 4.0 * sc2:
            q = abs(m) / np.sqrt(sc2) - 2.0
            # only a series whose day is well above its noise: the profile's range over SEASON_AMP x the residual's
            # long-run RMS (a rate, a road; not a weather-driven series with a weak daily cycle); the bins are read
            # only on these rare readings (z > 2)
            span = _profile_span(se, sl)
            # (road33: a weekly series, whose first Saturday its weekday profile mispredicted, has shown a day and
            # a week of its own: its gate is WEEKLY_AMP_X of that)
            amp = pr[P_SE_AMP] * WEEKLY_AMP_X if wk == 2.0 else pr[P_SE_AMP]
            if q > 0 and _isfinite(q) and span >= amp * np.sqrt(_fmax(ve, res * res)):
                season_in = _min(q / (q + pr[P_SE_THR]), SEASON_CAP)
    lane = 0.0
    if _isfinite(ec) and n >= 64:
        if age >= DAY_US:  # level36: the series less its profile (e + lv), its own level and residual regime
            kr = gap * RQ_LEVEL_PER_US
            _resid_regime(st, sl, e + lv, kr if kr < RQ_LEVEL_MAX else RQ_LEVEL_MAX)
        lane = _lane(st, se, sl, pr, ec, age, wk, np.sqrt(_fmax(np.float64(se[sl, SE_VE]), res * res)),
                     U_SE_L0 + (b0 if w1 < 0.5 else b1), dow0)
    # gap is finite here (has_prev: an int64 difference, > 0), and so are the products below (P_SE_PER_US >= 0): a
    # plain comparison is np.minimum for them
    if _isfinite(ec):
        kl = gap * pr[P_SE_PER_US]
        st[sl, C_SE_L] = lv + (kl if kl < 1.0 else 1.0) * ec
        kb = gap * PER_BIN_US
        after_day = age >= DAY_US
        g = (pr[P_SE_GAMMA] if after_day else 1.0) * (kb if kb < 1.0 else 1.0)
        # an unseen bin starts at this reading's distance from the level, a seen one moves by its share
        if seen:
            se[sl, c0] = np.float32(q0 + g * (1.0 - w1) * ec)
            se[sl, c1] = np.float32(q1 + g * w1 * ec)
        else:
            se[sl, c0] = np.float32(q0 + g * (1.0 - w1) * ec) if q0 == q0 else np.float32(xi - lv)
            se[sl, c1] = np.float32(q1 + g * w1 * ec) if q1 == q1 else np.float32(xi - lv)
        se[sl, SE_M] = np.float32(m)
        if after_day:
            ve = np.float64(se[sl, SE_VE])
            vm = np.float64(se[sl, SE_VM])
            n1 = n + 1.0
            rate = _max(pr[P_LR_RATE], 1.0 / n1)
            e2 = e * e
            m2 = m * m
            if n >= 64:
                if ve > 0:
                    e2 = _min(e2, 36.0 * ve)
                if vm > 0:
                    m2 = _min(m2, 36.0 * vm)
            se[sl, SE_N] = np.float32(_min(n1, SEASON_N_MAX))
            se[sl, SE_VE] = np.float32(ve + rate * (e2 - ve))
            se[sl, SE_VM] = np.float32(vm + rate * (m2 - vm))
    return season_in, lane


@njit(**_STAGE)
def _likelihood(st, sl, pr, raw, li_shift, spread_in, trend_in, season_in):
    """The likelihood: its input (the largest of the fused raw score and the level-shift, spread and trend inputs),
    smoothed, as a z against that input's own running mean and variance, or the seasonal score where that is
    larger (`_season_input`); weighted by P_LI_W, 0 until `li_min` readings. Then learns the smoothed input and
    its mean and variance.

    Reads C_LI_N, C_LI_S, C_LI_M, C_LI_V; P_LI_ALPHA, P_LI_THR, P_LI_MIN, P_LI_W, P_LI_RATE.
    Writes C_LI_N, C_LI_S, C_LI_M, C_LI_V. Returns its score."""
    li_n = st[sl, C_LI_N]
    li_m = st[sl, C_LI_M]
    li_v = st[sl, C_LI_V]
    li_in = _max(_max(_max(raw, li_shift), spread_in), trend_in)
    li_s0 = st[sl, C_LI_S]
    li_s = li_s0 + pr[P_LI_ALPHA] * (li_in - li_s0) if li_n > 0 else li_in
    li_z = (li_s - li_m) / _max(np.sqrt(li_v), 1e-9 * abs(li_m) + 1e-12)
    lz = _max(li_z, 0.0)
    lis = lz / (lz + pr[P_LI_THR])
    if not ((li_n >= pr[P_LI_MIN]) and _isfinite(lis)):
        lis = 0.0
    # the seasonal input is already a z against the series' own history (its day): the score directly, not
    # smoothed and not learned into the input's mean and variance (a clean day's is ~0, a changed day's 0.7-0.95)
    lis = _max(lis, season_in)
    li_rate = _max(pr[P_LI_RATE], 1.0 / (li_n + 1.0))
    li_d = li_s - li_m
    st[sl, C_LI_M] = li_m + li_rate * li_d
    st[sl, C_LI_V] = (1.0 - li_rate) * (li_v + li_rate * li_d * li_d)
    st[sl, C_LI_S] = li_s
    st[sl, C_LI_N] = li_n + 1.0
    return pr[P_LI_W] * lis


@njit(**_STAGE)
def _rearm(st, sl, pr, raw_v, raw_s, lis):
    """The re-arm gate, in tail space (1 - score): the memory of the recent peak is a tail that grows by 1/decay a
    reading, and a score is emitted only when its tail is below it; after an emission the memory is the score's
    tail x (1 - bump). So a repeat of the same score needs the same number of readings (half_life x
    log2(1 / (1 - bump))) however close to 1 it is. The value detectors' fused score `raw_v` and silence's weighted
    score `raw_s` have one memory each (C_PEAK, C_SI_PEAK; rearm31): silence's ~1.0 on a long gap must not hold
    back a value anomaly a few dozen readings later (fam30, `traffic:spike:7`), nor a spike silence's next gap;
    the fused score emitted is the larger of the two emissions. The likelihood's score has its own memory and is
    emitted only where its tail is also below both of those (its input counts silence's score, so the readings
    after an emitted gap would otherwise re-emit it as a likelihood score).

    Reads and writes C_PEAK, C_SI_PEAK, C_LI_PEAK; reads P_FU_BUMP, P_FU_DECAY.
    Silence's emission is returned apart (silcal32: `_calibrate` maps it with the gap's own tail), on its statistic
    as before, so which readings carry a score is unchanged (a gate on the calibrated score would let a rarer gap's
    emission hold back a later, less rare one for hundreds of readings: a station's next outage).

    Returns (the value detectors' fused raw score where emitted, else 0; silence's weighted score where emitted,
    else 0; the likelihood's score where emitted, else 0)."""
    bump = pr[P_FU_BUMP]
    grow = 1.0 / pr[P_FU_DECAY]
    t_mem = 1.0 - st[sl, C_PEAK]
    t_raw = _fmax(1.0 - raw_v, _TAIL_FLOOR)
    fu = raw_v if t_raw < t_mem else 0.0
    t_new = t_raw * (1.0 - bump) if fu > 0 else t_raw
    st[sl, C_PEAK] = 1.0 - _min(_min(t_mem * grow, 1.0), t_new)
    t_si = 1.0 - st[sl, C_SI_PEAK]
    t_rs = _fmax(1.0 - raw_s, _TAIL_FLOOR)
    fs = raw_s if t_rs < t_si else 0.0
    t_si_new = t_rs * (1.0 - bump) if fs > 0 else t_rs
    st[sl, C_SI_PEAK] = 1.0 - _min(_min(t_si * grow, 1.0), t_si_new)
    t_li = 1.0 - st[sl, C_LI_PEAK]
    t_lis = _fmax(1.0 - lis, _TAIL_FLOOR)
    li_f = lis if ((t_lis < t_li) and (t_lis < t_mem) and (t_lis < t_si)) else 0.0
    t_li_new = t_lis * (1.0 - bump) if li_f > 0 else t_lis
    st[sl, C_LI_PEAK] = 1.0 - _min(_min(t_li * grow, 1.0), t_li_new)
    return fu, fs, li_f


@njit(**_STAGE)
def _robust_emit(st, sl, pr):
    """The robust level and spread score's emission (shift33): its score as the last refresh set it
    (`_robust_refresh`), x the likelihood's weight, through a re-arm memory of its own (as `_rearm`'s: a sustained
    change is emitted once as it grows, not again while the slow memories catch up with a new level: its tail
    doubles over RS_REARM_HALF readings; and no burst's emission holds it back), mapped as the
    likelihood's score is (the prior tail: it is a distance in the series' own typical units already).

    shift37: where the score has held RS_HOLD_MIN for a while (C_RS_HOLD) its excess over the prior tail's level is
    stretched by up to RS_HOLD_X (at RS_HOLD_N readings of hold): a level or spread change that holds for many
    refreshes is much rarer on a series than one refresh's distance says (the server family's clean copies never
    held 0.5 beyond one refresh; a shift of 3-6 noise scales holds it for 50-190 readings of its 200-reading
    window), and the re-arm memory below sees the stretched score, so a change emits again as its hold grows.

    Reads and writes C_RS_PEAK; reads C_RS_S, C_RS_HOLD; P_LI_W, P_FU_BUMP, P_TL_U (and `_tail`'s).
    Returns the calibrated emission (0 where none)."""
    rs = st[sl, C_RS_S] * pr[P_LI_W]
    hold = st[sl, C_RS_HOLD]
    if hold > 0 and rs > 0:
        q = rs / (1.0 - rs)
        u = pr[P_TL_U]
        if q > u:
            q = u + (q - u) * (1.0 + (RS_HOLD_X - 1.0) * _min(hold / RS_HOLD_N, 1.0))
            rs = q / (1.0 + q)
    t_mem = 1.0 - st[sl, C_RS_PEAK]
    t = _fmax(1.0 - rs, _TAIL_FLOOR)
    f = rs if (rs > 0 and t < t_mem) else 0.0
    t_new = t * (1.0 - pr[P_FU_BUMP]) if f > 0 else t
    st[sl, C_RS_PEAK] = 1.0 - _min(_min(t_mem * RS_REARM_GROW, 1.0), t_new)
    if f > 0:
        f = 1.0 - _fmax(_tail(f / (1.0 - f), pr, 0.0, 0.0, 0.0, 1.0), _TAIL_FLOOR)
    return f


@njit(**_STAGE)
def _veto(st, sl, pr, s_robust_z, s_ewma, p_own):
    """The decisions' veto, consistent with the calibrated score: robust_z and ewma (whose statistic is a distance
    in units of the series' spread, so a heavy-tailed series reaches the threshold often) decide where their
    weighted score is also rare under the series' fitted tail (P <= fusion.alert_tail); such a decision then
    carries a calibrated score >= 1 - alert_tail (the fused raw score is at least as high). threshold (operator
    limits), silence (the live gap check has no tail), spike and flatline (scales learned per series; a repeated
    spike must never be learned away) decide on their statistic alone. Runs before `_calibrate` learns the tail.

    burst35: where the emission's tail is floored by the series' own burst rate (`p_own`, `_burst_rate`: only on a
    reading that continues a run of point exceedances) above alert_tail, the emitted score is below 1 - alert_tail,
    so robust_z and ewma do not decide there either: the decision follows its score on a burst's later readings
    (a run's first reading keeps its score and its decision). At the defaults (BF_PMAX 0.01 <= alert_tail 0.01) this
    vetoes nothing; it reads p_own, never the gate, so the scores never depend on alert_tail.

    Reads C_TL_N, C_TL_K, C_TL_E; P_AL_TAIL, P_W_ROBUST_Z, P_W_EWMA (and `_tail`'s). Writes nothing.
    Returns the veto bits (layout.VETO_BIT)."""
    tl_n = st[sl, C_TL_N]
    tl_k = st[sl, C_TL_K]
    tl_e = st[sl, C_TL_E]
    al = pr[P_AL_TAIL]
    veto = 0
    if p_own > al:  # burst35: the floored score is below 1 - alert_tail
        if s_robust_z >= 0.5:
            veto |= V_ROBUST_Z
        if s_ewma >= 0.5:
            veto |= V_EWMA
        return veto
    if s_robust_z >= 0.5 and not _decides(s_robust_z * pr[P_W_ROBUST_Z], al, pr, tl_n, tl_k, tl_e):
        veto |= V_ROBUST_Z
    if s_ewma >= 0.5 and not _decides(s_ewma * pr[P_W_EWMA], al, pr, tl_n, tl_k, tl_e):
        veto |= V_EWMA
    return veto


@njit(**_STAGE)
def _burst_rate(st, sl, pr, raw_p, point):
    """burstfp34 / burst35: how often this series shows a burst, as the floor of a point emission's tail on the
    readings that continue one. A burst is a run of at most BF_RUN readings whose point detectors' weighted
    statistic (robust_z, ewma, spike) is at or beyond its threshold (q = raw_p / (1 - raw_p) >= 1), counted where it
    ends (decayed as the tail fit's counts). On a reading that continues such a run (the previous reading's raw_p
    was >= 0.5) where the emission is the point detectors' (`point`), the emitted tail is at least BF_X x the
    series' rate of bursts, (bf_k + BF_A0) / (tl_n + BF_N0), at most BF_PMAX: a server's tenth cache flush is not a
    one-in-a-million reading on its second and later readings. A run's first reading keeps its score (at its first
    reading a server burst looks like a GECCO one-reading event: benchmarks/README.md, burstfp34), and so does a
    series that never showed a burst (the prior is ~BF_A0 in thousands of readings), and so does a reading further
    than BF_OWN x the series' own range (reach33's) beyond it: a level shift's new level (without that condition
    the default families' on/off level shifts lost 1.2 points, burst35 c5a). burst35 widened v8's "inside the range"
    by BF_OWN: that range widens slowly, so a typical burst's second reading was often just beyond it and kept a
    1 - 1e-4 score. BF_PMAX <= the default fusion.alert_tail, and `_veto` makes robust_z and ewma follow the
    floored score where it is above a smaller alert_tail, so a decision always carries >= 1 - alert_tail. Runs
    before `_calibrate` learns tl_n. O(1).

    Reads and writes C_BF_K, C_BF_R; reads C_TL_N, P_TL_DECAY. Returns that tail floor (0 where none)."""
    r = st[sl, C_BF_R]
    cont = r > 0  # this reading continues a run
    k = st[sl, C_BF_K] * pr[P_TL_DECAY]
    if raw_p >= 0.5:  # q >= 1
        r += 1.0
    else:
        if r > 0 and r <= BF_RUN:
            k += 1.0
        r = 0.0
    st[sl, C_BF_R] = r
    st[sl, C_BF_K] = k
    if not (point and cont):
        return 0.0
    return _min(BF_X * (k + BF_A0) / (st[sl, C_TL_N] + BF_N0), BF_PMAX)


@njit(**_STAGE)
def _burst_onset(st, sl, pr, raw_p, point, xi, med):
    """first36 / onset37: a burst's first reading on a series that bursts routinely, as the floor of a point
    emission's tail ("how rare is a jump this size on this series"). burst35's floor (`_burst_rate`) leaves a run's
    first reading alone: there a server's cache flush and a GECCO one-reading event look the same; they differ in how
    often the series does it and how large its onsets are. An onset is a run of q = raw_p / (1 - raw_p) >= BO_Q0; it
    is learned where it ends if the reading after its first *held* (still BO_HOLD x as far from the median: a burst,
    not a one-reading spike): decayed count bo_k, winsorised sum of ln (q / BO_Q0) bo_e, the largest bo_max. On an
    onset's first reading (at or below the decision level: onset37) where the emission is the point detectors'
    (`point`, with no range condition: onset37, a server's bursts lie beyond reach33's slowly widening range), once
    bo_k >= BO_MIN, the emitted tail is at least BO_X x the onsets' rate (bo_k + BF_A0) / (tl_n + BF_N0) x their ln
    q's Lomax tail (A = bo_k + BO_C0, B = bo_e + BO_C0 x BO_M0), which falls A times faster beyond twice the
    largest onset's q (onset37: with a few onsets the largest is a noisy bound), at most BF_PMAX (<= the default
    alert_tail: decisions unchanged at the defaults; `_veto` makes robust_z and ewma follow the floor above a
    smaller alert_tail). A series with few held onsets (a GECCO channel) keeps its scores. O(1): a log only on a
    run's first reading, a power only where the floor applies.

    Reads and writes C_BO_K, C_BO_E, C_BO_MAX, C_BO_Q, C_BO_R, C_BO_D, C_BO_H; reads C_TL_N, P_TL_DECAY.
    Returns (that tail floor (0 where none), whether the onset is no larger than the largest held one: onset37 caps
    reach33's score at the floor there)."""
    d = pr[P_TL_DECAY]
    k = st[sl, C_BO_K] * d
    e = st[sl, C_BO_E] * d
    r = st[sl, C_BO_R]
    floor = 0.0
    inside = False
    q = raw_p / _fmax(1.0 - raw_p, _TAIL_FLOOR)
    if r == 1:  # the reading after an onset: did it hold (a burst) or fall back (a one-reading spike)?
        d0 = st[sl, C_BO_D]
        st[sl, C_BO_H] = 1.0 if (xi - med) * d0 >= BO_HOLD * d0 * d0 else 0.0
    if q >= BO_Q0:
        if r == 0 and point and k >= BO_MIN:  # an onset's first reading (at or below the decision level)
            lq = math.log(q / BO_Q0)
            a = k + BO_C0
            tail = (1.0 + lq / (e + BO_C0 * BO_M0)) ** (-a)
            lmax = st[sl, C_BO_MAX]
            inside = lq <= lmax and abs(xi - med) <= st[sl, C_BO_DMAX]
            lmax += BO_MARGIN
            if lq > lmax:
                tail *= math.exp(-a * (lq - lmax))
            floor = _min(BO_X * (k + BF_A0) / (st[sl, C_TL_N] + BF_N0) * tail, BF_PMAX)
        if r == 0:  # an onset: its first reading's ln (q / BO_Q0) and distance from the median
            st[sl, C_BO_Q] = math.log(q / BO_Q0)
            st[sl, C_BO_D] = xi - med
        r += 1.0
    else:
        if r > 0 and r <= BO_RUN and st[sl, C_BO_H] > 0:  # a burst ended: its onset is learned
            lq = _min(st[sl, C_BO_Q], 5.0 * (e + BO_C0 * BO_M0) / (k + BO_C0))  # winsorised
            e += lq
            k += 1.0
            if lq > st[sl, C_BO_MAX]:
                st[sl, C_BO_MAX] = lq
            if abs(st[sl, C_BO_D]) > st[sl, C_BO_DMAX]:
                st[sl, C_BO_DMAX] = abs(st[sl, C_BO_D])
        r = 0.0
    st[sl, C_BO_R] = r
    st[sl, C_BO_K] = k
    st[sl, C_BO_E] = e
    return floor, inside


@njit(**_STAGE)
def _calibrate(st, sl, pr, raw, lis, fu, fs, cal_s, li_f, p_own):
    """The calibrated score: an emitted detector score is 1 - P(Q >= q) under the series' own fitted tail, where q
    is r / (1 - r) of the fused raw score r (one detector at weight 1: its statistic in units of its threshold),
    with fusion.detector_tail_stretch; the likelihood's score (already a z against the series' own history) the
    same way under the prior tail alone, unstretched, so it cannot change what a detector emits. The larger of
    the two. Silence's emission `fs` (silcal32) is the smaller of that map of its own score and `cal_s`, 1 - the
    gap's posterior-predictive tail (`_silence`): a gap the series shows now and then scores lower, and no gap
    scores higher than before (a gap just beyond an irregular series' expected interval is not "rare" by the value
    tail's map, whatever its own tail says). Then learns the tail fit: decayed counts of readings, of exceedances of the level u and their excess
    (winsorised at 5 x the current mean excess, so one anomaly does not teach the series that it is normal), from
    the detectors' statistic only.

    Reads C_TL_N, C_TL_K, C_TL_E; P_DT_STRETCH, P_TL_U, P_TL_DECAY, P_TL_E0, P_TL_C0 (and `_tail`'s).
    Writes C_TL_N, C_TL_K, C_TL_E. Returns the calibrated score (0 where neither was emitted) and whether it is
    silence's emission (fp45: `_silence_seen`)."""
    q_det = raw / (1.0 - raw)
    q_li = lis / (1.0 - lis)
    # the value detectors' emission's q (below raw where silence's statistic is higher; then fu < raw <= 1, so no
    # division by 0)
    q_fu = q_det if fu == raw else fu / (1.0 - fu)
    tl_n = st[sl, C_TL_N]
    tl_k = st[sl, C_TL_K]
    tl_e = st[sl, C_TL_E]
    if fu > 0:
        # p_own (burstfp34 / burst35, `_burst_rate`): > 0 only where fu is the point detectors' on a reading that
        # continues a run of point exceedances; the tail is then at least BF_X x the series' own rate of bursts
        fu = 1.0 - _fmax(_fmax(_tail(q_fu, pr, tl_n, tl_k, tl_e, pr[P_DT_STRETCH]), p_own), _TAIL_FLOOR)
    sil = False
    if fs > 0:
        fs = _min(cal_s, 1.0 - _fmax(_tail(fs / (1.0 - fs), pr, tl_n, tl_k, tl_e, pr[P_DT_STRETCH]), _TAIL_FLOOR))
        if fs > fu:
            fu = fs
            sil = True
    if li_f > 0:
        li_f = 1.0 - _fmax(_tail(q_li, pr, 0.0, 0.0, 0.0, 1.0), _TAIL_FLOOR)  # the prior tail
    tl_d = pr[P_TL_DECAY]
    u = pr[P_TL_U]
    st[sl, C_TL_N] = tl_d * tl_n + 1.0
    if q_det > u:
        m_now = (tl_e + pr[P_TL_E0]) / (tl_k + pr[P_TL_C0])
        st[sl, C_TL_K] = tl_d * tl_k + 1.0
        st[sl, C_TL_E] = tl_d * tl_e + _min(q_det - u, 5.0 * m_now)
    else:
        st[sl, C_TL_K] = tl_d * tl_k
        st[sl, C_TL_E] = tl_d * tl_e
    return _max(fu, li_f), sil and fu >= li_f


@njit(**_STAGE)
def _recalibrate(st, sl, pr, fu):
    """The second stage (fusion.recalibrate_level, 0 = off): the emitted score's own per-series tail. In surprise
    units y = -ln(1 - fu), an exponential tail above y0 fitted to this series' emitted scores (decayed counts of
    readings, of emissions above y0 and their excess, winsorised at 5 x the mean excess; the prior is the identity
    map: rate e^-y0, mean excess 1), below y0 a linear scale continuous at y0; so one threshold is the same tail of
    emitted scores on every series. Then learns that tail.

    Reads and writes C_RC_N, C_RC_K, C_RC_E; reads P_RC_Y0, P_RC_DECAY, P_RC_N0, P_RC_K0, P_RC_E0.
    Returns the score emitted (anomaly_score)."""
    rc_y0 = pr[P_RC_Y0]
    rc_y = 0.0
    if rc_y0 > 0:
        rc_n = st[sl, C_RC_N]
        rc_k = st[sl, C_RC_K]
        rc_e = st[sl, C_RC_E]
        rc_m = (rc_e + pr[P_RC_E0]) / (rc_k + pr[P_RC_K0])
        if fu > 0:
            rc_y = -math.log(_fmax(1.0 - fu, _TAIL_FLOOR))
            rc_ly = -math.log((rc_k + pr[P_RC_K0]) / (rc_n + pr[P_RC_N0]))
            if rc_y > rc_y0:
                rc_out = rc_ly + (rc_y - rc_y0) / rc_m
            else:
                rc_out = rc_y * (rc_ly / rc_y0)
            fu = 1.0 - _fmax(math.exp(-rc_out), _TAIL_FLOOR)
        rc_d = pr[P_RC_DECAY]
        st[sl, C_RC_N] = rc_d * rc_n + 1.0
        if rc_y > rc_y0:
            st[sl, C_RC_K] = rc_d * rc_k + 1.0
            st[sl, C_RC_E] = rc_d * rc_e + _min(rc_y - rc_y0, 5.0 * rc_m)
        else:
            st[sl, C_RC_K] = rc_d * rc_k
            st[sl, C_RC_E] = rc_d * rc_e
    return fu


@njit(**_STAGE)
def _learn_series(st, sl, pr, xi, cnt, has_prev, ew_m, res, change, gap, values, changes, gaps):
    """Learns what every detector reads of the series, last (the detectors read it as it stood before the
    reading): the long-run mean square deviation from the EWMA (a plain mean until the memory is full, winsorised
    at 6 long-run sigmas), the resolution, the previous value and the one before, the count, and the value,
    change and gap rings (the refreshes' windows; the value ring's base is set by its first value).

    Reads C_LR_V, C_VBASE, C_PREV (ew_m, res: `_scales`; change: `_spike`; gap: `_silence`); P_LR_RATE.
    Writes C_LR_V, C_RES, C_VBASE, C_BASE, C_PREV, C_COUNT and the rings. Returns the new count."""
    lr_rate = _max(pr[P_LR_RATE], 1.0 / (cnt + 1.0))
    if has_prev:
        dv = xi - ew_m
        lr_v = st[sl, C_LR_V]
        if cnt >= 64:
            lim2 = 36.0 * lr_v
            dv2 = _min(dv * dv, lim2) if lim2 > 0 else dv * dv
        else:
            dv2 = dv * dv
        st[sl, C_LR_V] = lr_v + lr_rate * (dv2 - lr_v)
        if change > 0 and (res == 0 or change < res):
            st[sl, C_RES] = change
    new_cnt = cnt + 1.0
    cix = np.int64(cnt)
    vbase = st[sl, C_VBASE]
    if vbase != vbase:  # the ring's first value: its base
        vbase = xi
        st[sl, C_VBASE] = xi
    values[sl, cix % values.shape[1]] = np.float32(xi - vbase)
    changes[sl, cix % changes.shape[1]] = np.float32(change) if (has_prev and change > 0) else np.float32(np.nan)
    gaps[sl, cix % gaps.shape[1]] = np.float32(gap / 1e6) if has_prev else np.float32(np.nan)
    st[sl, C_BASE] = st[sl, C_PREV] if has_prev else np.nan
    st[sl, C_COUNT] = new_cnt
    st[sl, C_PREV] = xi
    return new_cnt


@njit(**_STAGE)
def _step_rearm(st, sl, pr, a, step):
    """fp44: the re-arm gate (`_rearm`'s, in tail space, with the fusion's half-life and bump) on the anomaly_score
    where lane34's or drop43's statistic (`_lane`, `_count_drop`: `step`) is the reading's emission. Their bars
    (LANE_STEP, CD_STEP x the last emission's z) re-emit a departure a few times as it deepens, but from z ~7.4 on
    every such emission is 1 - 1e-12, so each re-emission scored like the onset: these repeats, a median 5-40
    readings after the last, were 1 in 4-6 of the false-positive rows at the pooled threshold on the server,
    traffic and default families and almost never a window's first detection (benchmarks/README.md, fp44).
    Such an emission is kept only where its tail is below the memory
    (the last one's tail x (1 - bump), doubling every half-life); else the reading scores 0. Score only, after the
    second stage (`_recalibrate` learns what it did before); no other emission reads or writes the memory.

    Reads and writes C_LN_PEAK; reads P_FU_BUMP, P_FU_DECAY. Returns the anomaly_score."""
    t_mem = _min((1.0 - st[sl, C_LN_PEAK]) / pr[P_FU_DECAY], 1.0)
    if step:
        t = _fmax(1.0 - a, _TAIL_FLOOR)
        if t < t_mem:
            t_mem = t * (1.0 - pr[P_FU_BUMP])
        else:
            a = 0.0
    st[sl, C_LN_PEAK] = 1.0 - t_mem
    return a


@njit(**_STAGE)
def _silence_seen(st, sl, a, sil):
    """fp45: silence's emission as the anomaly_score, x the series' own record of such gaps. Where silence's
    emission is the reading's score (`sil`), its tail is x (1 + si_seen), si_seen being how many of the series'
    earlier silence emissions scored SI_SEEN or higher: a gap is no one-in-a-thousand event on a series that has
    shown k such gaps (a traffic counter's outages: 306 of the traffic family's 666 false-positive rows at the pooled
    threshold were silence's, and 8 of its 859 windows' first detections; benchmarks/README.md, fp45). A series'
    first such gap scores as before, and a gap that never reached SI_SEEN is not counted. Score only, after the
    second stage (`_recalibrate` learns what it did before); counted on the score before this map.

    Reads and writes C_SI_SEEN. Returns the anomaly_score."""
    if sil and a > 0:
        k = st[sl, C_SI_SEEN]
        if a >= SI_SEEN:
            st[sl, C_SI_SEEN] = k + 1.0
        if k > 0:
            a = 1.0 - _min((1.0 - a) * (1.0 + k), 1.0)
    return a


@njit(cache=True, nogil=True, error_model="numpy", _nrt=False)
def _readings(s, t, x, last_ts, profile, table, st, values, changes, gaps, out, fused_out, veto_out,
              refresh_every, eager_refresh, season, scr_g, scr_d, scr_a, scr_b):
    """`process`'s loop over the readings, its stages inlined, without reference counting (the arrays are
    `process`'s arguments and scratch, alive throughout). One reading is the stages above in order: the
    shared scales, the six detectors (each scores, then learns), the fusion, the likelihood, the re-arm
    gate, the decisions' veto, the calibration, the series' own state, and now and then a refresh of the
    rolling statistics."""
    for i in range(s.shape[0]):
        sl = s[i]
        ti = t[i]
        xi = x[i]
        pr = table[profile[sl]]
        cnt = st[sl, C_COUNT]
        has_prev = cnt > 0
        med, mad, res, ew_m, ew_std, lr_std, floor, sh_m0, sh_s0 = _scales(st, sl, pr)

        s_silence, gap, s_silence_cal, s_silence_raw = _silence(st, sl, pr, ti, last_ts[sl], cnt, has_prev)
        s_robust_z = _robust_z(pr, xi, cnt, med, mad, ew_std, floor, sh_m0, sh_s0)
        s_flatline, s_flatline_fused, fl_short, fl_outgrew = _flatline(st, sl, pr, xi, ti, has_prev, mad, med)
        fl_top = _cap_hold(st, sl, xi, cnt, has_prev)  # leak43 (before reach learns xi)
        s_env = _max(_envelope(st, sl, pr, xi, cnt, has_prev, res, sh_m0),
                     _count_rate(st, sl, pr, xi, cnt, has_prev, med, mad, res))
        s_ewma, s_ewma_fused, li_shift = _ewma(st, sl, pr, xi, cnt, has_prev, med, mad, ew_m, ew_std, lr_std,
                                               floor, s_robust_z, sh_m0, sh_s0)
        s_spike, change = _spike(st, sl, pr, xi, cnt, has_prev, mad, res)
        s_threshold = _threshold(st, sl, pr, xi)
        s_ewma = _max(s_ewma, s_env)
        s_ewma_fused = _max(s_ewma_fused, s_env)
        q_exit = _exit(st, sl, pr, xi, ti, cnt, has_prev, mad, res)  # exit40 (before reach learns this reading)
        q_reach = _reach(st, sl, pr, xi, cnt, has_prev, mad, res)
        if q_reach >= 1.0 and abs(st[sl, C_XE_N]) == 1.0:  # exit40: reach scored the excursion's jump out: one event
            st[sl, C_XE_N] *= 1.0 + XE_FIRED
        s_reach = _reach_score(st, sl, pr, _max(q_reach, q_exit), cnt)
        s_period = _period(st, sl, pr, xi, ti, cnt, has_prev)  # period42 (score-only)

        raw_v = _fuse(pr, s_threshold, s_robust_z, s_ewma_fused, s_spike, s_flatline_fused)
        raw_s = s_silence_raw * pr[P_W_SILENCE]  # rep41: the statistic, not the decision's
        raw = raw_v  # all detectors' (the likelihood's input, the tail's statistic): silence folded in last
        if raw_s > raw:
            raw = raw_s
        spread_in = _spread_input(st, sl, pr, cnt, has_prev, res, change)
        trend_in = _trend_input(st, sl, pr, xi, cnt, has_prev, res)
        season_in, s_lane = _season_input(st, season, sl, pr, xi, ti, gap, cnt, has_prev, res)
        s_lane = _max(s_lane, _count_drop(st, season, sl, xi, ti, gap, has_prev))  # drop43 (score-only)
        lis = _likelihood(st, sl, pr, raw, li_shift, spread_in, trend_in, season_in)
        # flat40: a decided run outgrew every hold the series showed (leak43: not a hold at a cap it climbed into)
        fl_offer = fl_outgrew and s_flatline_fused > 0 and not fl_top
        if fl_offer:
            st[sl, C_PEAK] = 0.0  # flat40: forget the withheld rise (the value detectors' memory only)
        fu, fs, li_f = _rearm(st, sl, pr, raw_v, raw_s, lis)
        raw_p = _max(_max(s_robust_z * pr[P_W_ROBUST_Z], s_ewma_fused * pr[P_W_EWMA]), s_spike * pr[P_W_SPIKE])
        if (fl_short or fl_top) and fu > 0 and fu == s_flatline_fused * pr[P_W_FLATLINE] and fu > raw_p:
            # gecco39: flatline's emission on a run no longer than one the series has shown off its floor is withheld
            # (leak43: or on a hold at a cap the series climbed into, `_cap_hold`)
            # (the re-arm memory has counted it, as before: nothing else changes)
            fu = 0.0
        # burstfp34 / burst35: the point detectors' emission on a reading within a quarter of the series' own range
        # beyond it (as `_reach` found it, before it learns this one)
        bf_w = BF_OWN * (st[sl, C_XR_HI] - st[sl, C_XR_LO])
        own = has_prev and st[sl, C_XR_LO] - bf_w <= xi <= st[sl, C_XR_HI] + bf_w
        p_pt = fu > 0 and fu == raw_p and fu == raw  # the point detectors' emission
        p_on, on_inside = _burst_onset(st, sl, pr, raw_p, p_pt, xi, med)  # first36 / onset37
        p_own = _max(p_on, _burst_rate(st, sl, pr, raw_p, own and p_pt))  # burst35
        if p_on > 0 and on_inside:  # onset37: a routine onset beyond reach33's range is no rarer by its reach
            s_reach = _min(s_reach, 1.0 - p_on)
        veto_out[i] = _veto(st, sl, pr, s_robust_z, s_ewma, p_own)
        rs_f = _robust_emit(st, sl, pr)
        cal, cal_sil = _calibrate(st, sl, pr, raw, lis, fu, fs, s_silence_cal * pr[P_W_SILENCE], li_f, p_own)
        emitted = _max(_max(cal, _max(_max(s_reach, s_lane), s_period)), rs_f)
        step = s_lane > 0 and s_lane == emitted and s_lane > cal and s_lane > s_reach  # fp44: lane34's or drop43's
        sil = cal_sil and cal > 0 and cal == emitted  # fp45: silence's emission is the reading's
        if fl_offer:
            # flat40: the reading where a decided run outgrows every hold the series has shown: flatline's score
            # (rare against the series' own holds already) is mapped by the prior tail, as the likelihood's is; the
            # fitted tail has just learned this run's withheld rise, and would map a stuck sensor below 0.99
            r_fl = s_flatline_fused * pr[P_W_FLATLINE]
            e_fl = 1.0 - _fmax(_tail(r_fl / (1.0 - r_fl), pr, 0.0, 0.0, 0.0, pr[P_DT_STRETCH]), _TAIL_FLOOR)
            if e_fl > emitted:
                emitted = e_fl
                step = False
                sil = False
        if st[sl, C_XR_X] > 0:  # spike37: this reading left reach's range; its emission, for the reading after
            st[sl, C_XR_X] = 1.0 + emitted
        fused_out[i] = _max(_silence_seen(st, sl, _step_rearm(st, sl, pr, _recalibrate(st, sl, pr, emitted), step),
                                          sil),  # fp44, fp45
                            _day_drift(st, season, sl, xi, ti))  # drift46 (score-only)
        out[i, 0] = s_threshold
        out[i, 1] = s_robust_z
        out[i, 2] = s_ewma
        out[i, 3] = s_spike
        out[i, 4] = s_flatline
        out[i, 5] = s_silence

        nc = np.int64(_learn_series(st, sl, pr, xi, cnt, has_prev, ew_m, res, change, gap, values, changes, gaps))
        if nc <= eager_refresh or nc % refresh_every == 0:
            # the floor and the gaps every SLOW_REFRESH x refresh_every readings: they move slowly
            slow = nc <= eager_refresh or nc % (SLOW_REFRESH * refresh_every) == 0
            _refresh(sl, nc, pr, st, values, changes, gaps, scr_g, scr_d, scr_a, scr_b, slow, refresh_every)
        last_ts[sl] = ti


#: the loop over readings and its per-reading stages (tests/detect_reference.py runs their Python source)
STAGES = (_readings, _scales, _silence, _robust_z, _active_level, _envelope, _count_rate, _exit, _reach, _reach_score,
          _period, _period_pending, _period_learn,
          _ewma, _spike, _flatline, _cap_hold,
          _threshold, _fuse, _spread_input,
          _trend_input, _week_pending, _lane, _count_drop, _day_drift, _season_input, _likelihood, _rearm,
          _robust_emit, _veto,
          _burst_onset, _burst_rate, _calibrate, _recalibrate, _step_rearm, _silence_seen, _learn_series)


@njit(cache=True, nogil=True, error_model="numpy")
def process(s, t, x, last_ts, profile, table, st, values, changes, gaps, out, fused_out, veto_out,
            refresh_every, eager_refresh, season):
    """Score readings (already sorted by (slot, ts), skips removed) and update the slots' state.

    Columns are the named constants of detect/layout.py (C_* state, P_* parameters). out [n, 6]
    detector scores in DETECTOR_NAMES order, fused_out [n], veto_out [n] uint8 (layout.VETO_BIT: the
    statistic reached its threshold, the calibrated tail vetoes the decision). The readings run
    through `_readings`, one stage function after another. season [n, len(layout.SEASON)] float32: the seasonal
    input's profile and scales (`_season_input`).
    """
    nbuf = max(values.shape[1], changes.shape[1], gaps.shape[1])
    scr_g = np.empty(nbuf, np.float64)  # scratch of the refreshes
    scr_d = np.empty(nbuf, np.float64)
    scr_a = np.empty(nbuf, np.float64)
    scr_b = np.empty(nbuf, np.float64)
    _readings(s, t, x, last_ts, profile, table, st, values, changes, gaps, out, fused_out, veto_out,
              refresh_every, eager_refresh, season, scr_g, scr_d, scr_a, scr_b)
