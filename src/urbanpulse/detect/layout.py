"""Column layouts of DetectorBank's per-slot state table and per-profile parameter table.

One place that names every column, so the kernel (`_kernel.py`) reads `st[sl, C_EW_V]` and
`pr[P_EW_ALPHA]`, not positions, and the bank, the profiles and the kernel cannot disagree. This
module imports nothing from the package (the kernel module-level constants are frozen by numba
at compile time).
"""

from __future__ import annotations

DETECTORS: tuple[str, ...] = ("threshold", "robust_z", "ewma", "spike", "flatline", "silence")

# float64 state columns of one slot ("vbase": the float64 base the float32 value ring's entries are
# offsets from, see _kernel.py)
STATE: tuple[str, ...] = (
    "count", "med", "mad", "dscale", "gap_med", "ew_m", "ew_v", "prev", "base",
    # period42: the Schmitt trigger's level, band and side (`_period`, below with its other columns), read every
    # reading: beside the columns every reading reads, so they share their cache lines (throughput)
    "pe_l", "pe_a", "pe_s",
    "fl_ref", "fl_run", "fl_start", "fl_ok", "thr_on", "peak", "lo_min", "lo_q",
    "sh_m", "sh_s", "sh_n", "env_hi", "env_lo", "li_n", "li_s", "li_m", "li_v", "li_peak",
    "sh_sp", "sh_sn", "gap_spread", "fl_max", "lr_v", "res", "ch_v", "dch",
    "tl_n", "tl_k", "tl_e", "vbase", "nz_s", "nz_l",
    "tr_s1", "tr_s2", "tr_m", "tr_vm", "tr_ve",
    "rc_n", "rc_k", "rc_e", "dscale_n", "dscale_lr", "chg_rms_lr",
    "ac_m", "ac_v",
    "se_l", "se_t0",
    # --- road33: whether the series is weekly (0 = no first Saturday judged yet, 1 = the first Saturday being judged,
    # 2 = weekly: Saturdays and Sundays have a profile of their own, 3 = not weekly: one profile, as before)
    "se_wk",
    # the level as the judged Saturday found it (that weekend's profile and the Monday are read against it)
    "se_ls",
    "cr_p", "cr_s",
    # --- silence's rarity of long gaps (gap31): decayed counts of the gaps judged, of those of at least
    # `factor` x the median gap ("long"), and of their excess over it in median gaps (winsorised), and the
    # longest long gap not silent (seconds, decaying); the tail they fit tells a gap the series shows now and
    # then from one beyond anything it has shown
    "si_n", "si_k", "si_e", "si_max",
    # --- silence's memory of the gaps a series has shown (rep41): the longest gap not silent (a silent one counts as
    # `factor` median gaps if at most SI_REPEAT x that, else not at all), in seconds, decaying as the counts above;
    # a gap up to SI_REPEAT x it is the series' normal sampling (a 5-minute sensor that skips a few readings now and
    # then)
    "si_rep",
    # --- silence's own re-arm memory (rearm31): the recent emitted silence score (as `peak` is the value
    # detectors'), so an emission on a long gap does not hold back a value anomaly that follows it
    "si_peak",
    # --- reach, a score-only statistic (reach33, `_reach` / `_reach_score`): the readings' own range (the highest
    # and lowest reading, widening slowly), and the decayed count of readings scored beyond it, their mean
    # excess's sum, and the count (C_COUNT) when those two were last decayed (decayed lazily, on those rare readings)
    "xr_hi", "xr_lo", "xr_n", "xr_e", "xr_t",
    # traffic36: the largest jump between consecutive readings the series has made (reach's second path)
    "xr_j",
    # spike37: the largest there-and-back the series has made (the smaller of two consecutive changes of opposite
    # sign), and whether the last reading left the range from a reading inside it (1 + its emission before the second
    # stage) or not (0) (reach's third path)
    "xr_tb", "xr_x",
    # --- a robust level and spread score (shift33; scores only): the rolling median's and the rolling median
    # |change|'s slow memories (EWMAs of them over the refreshes), their typical distances from those memories, the
    # score they give (set at each refresh: every input moves only there) and its own re-arm memory
    "rm_slow", "rm_typ", "rd_slow", "rd_typ", "rm_pk", "rd_pk", "rs_s", "rs_peak",
    # level34: the regime memory (an EWMA of sqrt(2) MAD / median |change|: ~1 for i.i.d. noise around a level)
    "rs_rho",
    # --- lane34, a score-only statistic (`_lane`): the seasonal residual's slow mean (hours), its long-run mean
    # square (the series' own day-to-day variation of it), how many readings that has learned, and the z an
    # emission must reach next (0 = LANE_Z; raised by each emission, reset where z falls back below LANE_RESET)
    "lc_m", "lc_v", "lc_n", "lc_bar",
    # --- burstfp34: the series' own bursts (runs of at most BF_RUN readings whose point-detector statistic is at
    # least its threshold), a decayed count (the tail fit's memory), and the length of the run now open
    "bf_k", "bf_r",
    # --- level36 (resid35's idea): level34's level score on the series less its daily profile: that difference's own
    # level (~2 h, burst-robust), its slow memory, typical distance from it and the largest distance seen; and the
    # regime of the residual from that level (its median |residual| and median |change of residual|, tracked, and the
    # last residual: sqrt(2) x the first over the second is ~1 where what the profile leaves is i.i.d.-like noise)
    "rq_l", "rq_slow", "rq_typ", "rq_pk", "rq_a", "rq_d", "rq_e",
    # shift37: readings the robust level / spread score (rs_s) has held at least RS_HOLD_MIN, up to its last refresh
    "rs_hold",
    # --- first36: the series' own burst onsets (`_burst_onset`): a decayed count of the bursts' first readings, the
    # decayed sum of their point statistic's ln (q / BO_Q0), the largest, the open run's first, its length, its first
    # reading's distance from the median and whether the reading after it held (a burst) or not (a one-reading spike)
    "bo_k", "bo_e", "bo_max", "bo_q", "bo_r", "bo_d", "bo_h",
    # --- onset37: the largest held onset's distance from the median (reach is capped only within it)
    "bo_dmax",
    # --- gecco39: the longest run of equal readings off the series' floor it has shown, counted by flatline or not
    # (decaying as fl_max): a quantised channel holds a step for hours while its window's MAD is 0, and flatline's
    # emission is withheld on a run no longer than that (scores only, `_flatline`)
    "fl_all",
    # --- exit40: a sustained exit from reach's range (`_exit`): the range's edge the open excursion left (its anchor)
    # and the excursion's signed length in readings (+ above, - below, 0 = none; + or - XE_FIRED once it was scored)
    "xe_a", "xe_n",
    # --- exit41: the time (µs) the open excursion began; between excursions the time the last one ended, or the
    # series' first reading's before any (`_exit`)
    "xe_t",
    # --- period42: a changed period (`_period`, score-only; at the top: the series' slow level and mean |deviation|
    # from it, the Schmitt trigger's centre and band, and its side, +-1 pending, +-2 confirmed, 0 none yet): when the
    # side last flipped (µs), the last confirmed up- and down-crossings (µs, 0 = none), the periods learned (capped
    # count), their log's mean and mean |deviation|, the run of consecutive periods outside that (signed, + longer)
    # and its last period's log
    "pe_tf", "pe_tu", "pe_td", "pe_n", "pe_m", "pe_v", "pe_r", "pe_ry",
    # --- gecco43: exit's day clock (xe_t between excursions) as it stood before the open excursion began, and
    # whether that excursion has gone XE_H bars beyond its anchor (1) or not (0): one that never did (a touch of the
    # range's edge) leaves the day's clock as it was when it ends (`_exit`)
    "xe_pt", "xe_dp",
    # --- drop43: a count series that loses part of its events (`_count_drop`, score-only): 1 once a reading was not a
    # non-negative integer (not a count series: never scored again), the series' first timestamp (µs), the slow sums
    # (~2 h) of the counts and of the hour-of-day profile's expected counts, the all-day mean square of their log
    # ratio, and the z an emission must reach next (0 = CD_Z; as lane34's bar)
    "cd_no", "cd_t0", "cd_a", "cd_b", "cd_v", "cd_bar",
    # --- leak43: how many runs began, by a climb, at the unchanged top of reach's range while it was recent (at most
    # FL_TOP_VISITS: a value pinned at a cap it ramped into), and the reading count at which that top last rose
    # (`_cap_hold`)
    "fl_top", "fl_top_n",
    # --- fp44: the re-arm memory of lane34's and drop43's emissions where one is the reading's anomaly_score (as
    # `peak` is the value detectors'): their step re-emissions as a departure deepens saturate at the tail floor, so
    # without it each scored like the onset (`_step_rearm`)
    "ln_peak",
    # --- fp45: how many of silence's emissions at SI_SEEN or higher were the series' anomaly_score (`_silence_seen`)
    "si_seen",
    # --- drift46: a slow drift against yesterday (`_day_drift`, score-only): the open 30-minute bin (its serial + 1,
    # 0 = none), its sum and count of winsorised readings; the UTC day of `dd_mc` and the masks of the bins completed
    # that day (dd_mc) and the day before (dd_mp, 48 bits: exact in float64); the float64 base the float32 bin means
    # are offsets from; the winsorising scale (mean |departure from yesterday's bin mean|) and its count; the
    # departures' (D) count, short mean, slow level, RMS and its count, the last D, the mean square of D's bin-to-bin
    # change and its count; the held z and smoothness, the readings scored with z > 0, the record (largest z of the
    # D's before the last DD_LAG), the last DD_LAG z's (a ring), and 1 once the stage emitted (once a series)
    "dd_bin", "dd_s", "dd_c", "dd_day", "dd_mc", "dd_mp", "dd_base", "dd_mad", "dd_nm",
    "dd_nd", "dd_m", "dd_lv", "dd_v", "dd_nv", "dd_dp", "dd_dv", "dd_ndv",
    "dd_z", "dd_sm", "dd_nz", "dd_rec", "dd_r0", "dd_r1", "dd_r2", "dd_r3", "dd_r4", "dd_done",
)
S = {name: i for i, name in enumerate(STATE)}

#: phase bins of the daily profile behind the likelihood's seasonal input (hours of the UTC day)
SEASON_BINS = 24
# float32 columns of one slot's seasonal table (the bank's `season`): the profile's bins (offsets from the float64
# level `se_l` of the state table, so float32 keeps their precision), the residual's short-term mean, its long-run
# mean square and the short-term mean's, and how many readings those two have learned (exact in float32: capped)
SEASON: tuple[str, ...] = (
    *(f"b{b}" for b in range(SEASON_BINS)), "m", "ve", "vm", "n",
    # --- road33: the weekend's profile (Saturday and Sunday of the UTC calendar; NaN = not seen: predicts with the
    # weekdays' bin at that hour), learned from the first Saturday judged on; the weekday bins and the residual's
    # scales as that Saturday found them (restored if the series is judged weekly: the Saturday was another kind of
    # day and must not stay in the weekdays' profile nor in the RMS); that Saturday's clipped squared residuals
    # against the weekday profile, summed, and their count
    *(f"w{b}" for b in range(SEASON_BINS)), *(f"s{b}" for b in range(SEASON_BINS)), "sve", "svm", "sn", "wo", "wc",
    "wf", "wfc", "ws", "wsw", "wsc", "wm", "wmw", "wmc",
    # --- lane34: the seasonal residual's slow mean's mean square at each hour of the UTC day (0 = not seen): its
    # day-to-day variation there (a road's rush hours differ from day to day far more than its nights)
    *(f"l{b}" for b in range(SEASON_BINS)),
    # --- drop43: a count series' mean count at each hour of the UTC day (NaN = not seen), and the mean square of the
    # slow sums' log ratio (observed / expected) there (0 = not seen): its day-to-day variation at that hour
    *(f"c{b}" for b in range(SEASON_BINS)), *(f"d{b}" for b in range(SEASON_BINS)),
    # --- drift46: the last completed mean of each 30-minute bin of the UTC day (offsets from `dd_base`; which of
    # them are yesterday's: the state's `dd_mp`), `_day_drift`
    *(f"y{b}" for b in range(2 * SEASON_BINS)),
)
SE = {name: i for i, name in enumerate(SEASON)}

# float64 parameter columns of one profile (NaN = "not set" where a limit is optional)
PARAMS: tuple[str, ...] = (
    *(f"on_{n}" for n in DETECTORS),
    *(f"w_{n}" for n in DETECTORS),
    "thr_high", "thr_low", "thr_clear_high", "thr_clear_low",
    "rz_window", "rz_threshold", "rz_min",
    "ew_alpha", "ew_threshold", "ew_min", "sh_alpha", "sh_threshold", "sh_decay",
    "sp_window", "sp_threshold", "sp_min",
    "fl_min_readings", "fl_min_duration_us", "fl_tolerance", "fl_only_varying",
    "si_factor", "si_interval_us", "si_window", "si_min",
    "fu_decay", "fu_bump", "li_w", "li_rate", "li_alpha", "li_thr", "li_min",
    "ls_thr", "ls_floor",
    "fl_learn", "fl_decay", "sp_floor", "ew_floor", "lr_rate", "si_irregularity",
    "tl_u", "tl_decay", "tl_n0", "tl_k0", "tl_e0", "tl_c0", "al_tail",
    "nz_thr", "nz_rate",
    "tr_thr", "tr_alpha", "tr_rate", "tr_slope", "tr_w",
    "rc_y0", "rc_decay", "rc_n0", "rc_k0", "rc_e0",
    "dt_stretch",
    "env_k", "env_g", "env_min", "env_decay",
    "se_thr", "se_per_us", "se_gamma", "se_amp",
    "cr_thr", "cr_lnk", "cr_km1",
    # --- silence's rarity of long gaps (gap31): ln of the per-gap tail probability below which a gap is
    # silent (-inf = off), the counts' decay a gap, the prior's gaps (none long) and its mean excess
    "si_lnp", "si_decay", "si_n0", "si_m0",
    # --- reach (reach33): its level in widths of the readings' range (0 = off), and the readings seen before it scores
    "xr_thr", "xr_min",
)
COL = {name: i for i, name in enumerate(PARAMS)}

# silence's rarity of long gaps (gap31): constants the kernel's `_silence` and the bank's live check
# (`DetectorBank.check_silence`) both read, so the two judge a gap alike
SI_C0 = 2.0  # silence's rarity: the prior's long gaps (of mean excess `si_m0`) in the fitted mean excess
SI_WINSOR = 5.0  # silence's rarity: a long gap's excess is learned at most this x the current mean excess
SI_Z = 2.0  # silence's rarity: the long gaps' count is taken as its estimate less SI_Z standard errors (sqrt of it),
# so a rate learned from a few long gaps (two outages of a station) does not make the next one usual
SI_CAP = 3.0  # silence's rarity: a gap over this x the longest usual one (not silent) the series has shown is silent
SI_CAP_N = 16.0  # ... once this many long gaps are counted
SI_CAP_GAPS = 256.0  # ... among this many gaps (the longest of a few dozen exponential gaps is short)
# whatever the tail gives (an exponential tail fitted to runs of at most 30 missed slots extends far beyond 30)
SI_REPEAT = 2.0  # silence's repeat memory (rep41): a gap is silent only beyond this x the longest gap the series
# has shown (`si_rep`): a series that skips a reading now and then is not silent on a run of two or three, one that
# never missed a reading (si_rep ~ one median gap) is judged as before, and a dropout of 9+ slots on a series whose
# runs of missed readings reach 3 (gaps of 4 slots) is still silent
SI_USUAL = 0.49  # rep41: silence's statistic on such a gap, just below the decision (0.5): the likelihood, the tail
# and the emitted score see it as before, the alert is not raised
SI_SEEN = 0.999  # fp45: a gap whose emitted score reached this counts as one the series has shown (`si_seen`); the
# next gap's tail is x (1 + that count): a series' k-th outage at 1 - 1e-3 or rarer is not a one-in-a-thousand event

# --- silence's calibrated score (silcal32): silence's *emitted* score is 1 - the posterior-predictive probability
# of a gap at least this long under the series' own gaps (the gap31 counts si_n, si_k, si_e and their prior), not
# its statistic through the value detectors' tail: P(gap >= q medians) = P(long) x (1 + (q - factor) / B)^-A, with
# P(long) = (si_k + SC_A0) / (si_n + si_n0 + SC_A0) (a Beta posterior's mean: a long gap's chance a gap) and the
# excess's Lomax tail (an exponential with a Gamma posterior on its rate: A = si_k + SC_C0, B = si_e + si_m0 x
# SC_C0), linear from 1 at the median gap to P(long) at `factor` median gaps below it. So the same gap scores lower
# on a series that has shown a few such gaps than on one that never missed a reading, and a gap far beyond anything
# seen scores near 1. Scores only: the decision is silence's statistic (score >= 0.5) as before; no state column
SC_A0 = 5.0  # silcal32: the prior's long gaps in P(long) (with si_n0 = 200: a long gap once in ~40 gaps before any is seen)
SC_C0 = 2.0  # silcal32: the prior's long gaps (of mean excess `si_m0`) in the excess's Lomax tail

# --- reach (reach33): a single reading beyond the series' own range of readings, scored (never decided) as 1 - the
# posterior-predictive probability of a reading that far beyond it: P = P(beyond) x (1 + (q - 1) / B)^-A, q the
# distance in units of `reach_threshold` x the range's width, P(beyond) = (xr_n + XR_A0) / n_eff (n_eff the decayed
# count of readings, memory `envelope_memory`), A = xr_n + XR_C0, B = xr_e + XR_C0 x XR_M0 (the excess q - 1's Lomax
# tail). So a speed of 189 on a road whose readings never passed 109 scores near 1 whatever the rush hour's MAD, and
# a series that often leaves its range (a heavy tail) learns that it does
XR_A0 = 1.0  # reach33: the prior's readings beyond the range, in P(beyond)
XR_C0 = 2.0  # reach33: the prior's readings beyond the range (of mean excess XR_M0) in the excess's Lomax tail
XR_M0 = 1.0  # reach33: the prior's mean excess beyond the bar, in bars
XR_RES = 16.0  # reach33: the range is at least this many resolutions wide (a channel quantised to a few steps)
# traffic36: reach's second path, a reading beyond the range reached by a record jump: scored where the jump from the
# previous reading (inside the range) is at least XR_JUMP x the largest jump the series has made (`xr_j`), at
# q = jump / (XR_JUMP x xr_j) bars (a road's stalled vehicle, speed 0-20 % of free flow, lies a fraction of a width
# below a range the rush hours' jams widened, but no reading of the road ever fell that far at once), and at least
# XR_JUMP_W x the range's width (a spike, not a ramp of steps growing out of a flat series' range: 3W's pressures,
# GECCO's Fm / pH steps, a SKAB accelerometer's dip scored on the development set without it)
# and only where the previous reading's own change was at most XR_JUMP_CALM x that largest jump (one reading leaving a
# steady road, not the next step of a move already under way: GECCO's Fm_2_51 step 812, 834, 884 on the dev set)
XR_JUMP = 1.5
XR_JUMP_W = 1.0
XR_JUMP_CALM = 0.8
# spike37: reach's third path, one reading beyond the range and straight back: scored on the reading that returns
# (inside the range again) where the previous reading left the range from a reading inside it and the there-and-back
# (the smaller of its jump out and its jump back) is at least XR_TB x the largest there-and-back the series has made
# (`xr_tb`), at q = that / (XR_TB x xr_tb) bars: a road's stalled or spurious vehicle a fraction of a width beyond a
# range the jams widened, reached by a jump a noisy night's changes matched, but an out-and-back no pair of readings
# ever made; a server's incident reading beyond a heavy-tailed history's furthest
XR_TB = 1.5
# exit40: a sustained exit (`_exit`): an excursion begins with a reading beyond reach's range and lasts while every
# reading stays beyond the edge it left (its anchor: the range as it stood then, not the range that widens after it),
# less XE_H x the bar below (noise at the edge does not end it), for at most XE_END readings. Where it has lasted
# XE_M to XE_AGE readings and XE_M_US and the reading is at least XE_K x the range's width beyond the anchor, it is
# scored once, at q = depth / (XE_KQ x width), through reach's tail (a machine cooling below the lowest reading it
# ever showed, an overheating above the highest; a trend that creeps beyond the range reaches the bar only after
# XE_AGE readings)
XE_M = 12.0
XE_K = 0.15  # exit41: 0.1 in exit40 (GECCO's channels leave their range by 0.1-0.15 widths, unlabelled)
XE_H = 0.5
XE_KQ = 0.1  # exit41: q = depth / (XE_KQ x width) where scored (exit40's scale; the bar XE_K only gates)
XE_AGE = 96.0
XE_QUIET = 96.0  # exit40: ... and only where the series stayed inside its range this many readings before it began
XE_QUIET_US = 86_400e6  # exit41: ... and a day (µs) after the last one's end and after the series' first reading
XE_M_US = 3_600e6  # exit41: ... and has lasted an hour (µs): a one-minute series' 12 readings are not sustained
XE_END = 96.0  # exit41: an excursion this long is over, back inside its anchor or not (it can no longer be scored)
XE_FIRED = 1.0e6  # added to |xe_n| once the excursion was scored (one excursion, one emission)
BF_RUN = 12.0  # burstfp34: a run of point exceedances this long or shorter is one of the series' own bursts
BF_A0 = 0.05  # burstfp34: the prior's bursts in P(a burst a reading) = (bf_k + BF_A0) / (tl_n + BF_N0)
BF_N0 = 200.0  # burstfp34: the prior's readings in that rate
BF_X = 4.0  # burstfp34: a burst reading's tail floor is this many times the rate of bursts (a burst: several)
BF_OWN = 0.25  # burst35: the floor only within this x the series' range (reach33's) beyond that range
BF_PMAX = 0.01  # burstfp34: the floor is at most this (<= the default alert_tail: decisions unchanged at the defaults)
# --- first36: a burst's first reading on a series that bursts routinely (`_burst_onset`). burst35's floor leaves a
# run's first reading alone (at its first reading a server burst looks like a GECCO one-reading event); what tells
# them apart is how often the series does it and how large its onsets are. Once the series has shown BO_MIN bursts
# (decayed count), a run's first reading's emitted tail is at least BO_X x P(a burst onset at least this large a
# reading) = BO_X x (bo_k + BF_A0) / (tl_n + BF_N0) x S(ln q), S the onsets' ln q Lomax tail (A = bo_k + BO_C0,
# B = bo_e + BO_C0 x BO_M0), falling A times faster beyond the largest onset seen; at most BF_PMAX
BO_Q0 = 0.5  # first36: an onset is a run of point statistics q >= this (thresholds): the series' bursts, most of
# which stay below the decision level, teach the rate; their magnitude above it, the tail
BO_HOLD = 0.5  # first36: an onset counts where the reading after it is still this x its distance from the median
BO_RUN = 1e9  # first36: a run of point exceedances this long or shorter counts as an onset where it ends
BO_MIN = 3.0  # first36: held onsets (decayed count) before the onset floor applies (a quiet series keeps its scores)
BO_X = 8.0  # first36 (4), onset37 (8): the onset floor is this x the series' rate of onsets at least this large
BO_C0 = 2.0  # first36: the prior's onsets (of mean ln q BO_M0) in the onsets' Lomax tail
BO_M0 = 0.5  # first36: the prior's mean ln q of an onset
BO_MARGIN = 0.6931471805599453  # onset37: the Lomax tail falls fast only beyond ln 2 above the largest onset's ln q
XR_STEPS = 8.0  # reach33: ... and this many of spike's robust scales of changes (a ramp of steps as wide as its range)
# a robust level and spread score (shift33): the anomaly_score counts where the rolling median (robust_z's window)
# has moved from its slow memory, or the rolling median |change| (spike's window) has grown over its own, each in
# units of its typical distance from that memory: scales a normal burst of a few readings cannot inflate (a
# median of 64-128 readings hardly moves for one), unlike ewma's level-shift distance and the likelihood's RMS
# change (benchmarks/README.md, fam30 mechanism 2). Emitted through its own re-arm memory and the likelihood's prior
# tail; scores only: no detector score or decision changes
RS_RATE = 1.0 / 512.0  # the slow memories' rate a reading (a refresh moves them refresh_every x this)
RS_TYP_RATE = 1.0 / 1024.0  # the typical distances' rate a reading
RS_WINSOR = 3.0  # a distance is learned at most this x the typical one
RS_LEVEL_FLOOR = 0.35  # the level's typical distance is at least this x 1.4826 MAD (a median's move of noise)
RS_SPREAD_FLOOR = 0.2  # the spread's typical relative distance is at least this
RS_PK_HALF = 1.0  # the largest distance seen (in typical distances) halves over this many readings
RS_PK_FLOOR_LEVEL = 2.0  # the level's distance is scored beyond this many typical distances (level34: was 1)
RS_PK_FLOOR_SPREAD = 2.0  # the spread's distance is scored beyond this many typical distances (level34: was 1)
RS_THR = 1.0  # the score is r / (r + RS_THR), r = q / the largest q seen (floored) - 1
RS_CAP = 0.95  # the score's largest value
RS_START = 1536.0  # readings before the score counts (the memories and typical distances have settled)
RS_RHO_MAX = 1.25  # level34: scored only where the regime memory (sqrt(2) MAD / median |change|) is below this
RS_RHO_RATE = 1.0 / 1024.0  # level34: the regime memory's rate a reading
RS_RHO_CAP = 4.0  # level34: a window's regime statistic is learned at most this (and this where MAD or changes are 0)
RS_REARM_HALF = 1024.0  # level34: readings for the emission's re-arm memory (its tail) to double: a shift is emitted
# as its median moves, not again while the slow memory catches up with the new level (~1,500 readings)
RS_REARM_GROW = 2.0 ** (1.0 / RS_REARM_HALF)
# level36 (resid35's idea, not adopted then): where level34's regime gate shuts a series out (a daily cycle inside
# robust_z's window: sqrt(2) MAD / median |change| 1.4-4), the same score counts on what the daily profile leaves: the
# level is the series less the seasonal stage's profile, its own burst-robust ~2 h level (`_resid_regime`), scored
# against its slow memory as level34 scores the rolling median, in units of its own typical distance (learned only
# off a scored distance, so a shift building does not widen it); the spread is level34's (the median |change|: a
# daily cycle hardly moves it). What the profile leaves wanders with the profile's errors (an autocorrelated residual:
# regime statistic 1.3-2 on the server family's daily-swing half); the typical distance is learned on that level, so
# it carries the wander, and the path scores up to RQ_RHO_MAX
RQ_RHO_MAX = 1.6  # level36: scored where sqrt(2) median |residual| / median |change of residual| is below this
RQ_RATE = 1.0 / 1024.0  # resid35: the residual regime's median trackers' relative step a reading (larger at first)
RQ_CLIP = 3.0  # resid35: the residual moves the level at most this many robust scales (1.4826 median |residual|)
RQ_LEVEL_PER_US = 1.0 / (2.0 * 3.6e9)  # level36: the residual's own level moves by this share of a gap (2 h memory)
RQ_LEVEL_MAX = 1.0 / 24.0  # level36: ... and at most this a reading (an hourly series' level: a day, not 2 readings)
RQ_MIN_N = 512.0  # resid35: residuals learned (after the profile's first day) before the residual path scores
# shift37: a level or spread change that holds is rarer than one refresh's score says. On the server family's clean
# copies the robust score (rs_s) held >= 0.5 for at most one refresh (8 readings; 80 copies), on the shifted and
# noisier copies for 50-190 readings of the 200 after the onset. Where it has held RS_HOLD_MIN its emission's excess
# over the prior tail's level is stretched, linearly in the hold, up to RS_HOLD_X at RS_HOLD_N readings of hold
# (benchmarks/README.md, shift37: 2.5-8 x, 16-64 readings and 0.3-0.5 tried; 8 x from 0.4 at 16 readings moved LODO's
# SKAB threshold, 6 x from 0.4 raised a clean road's rows past tests/test_detect_reach_score.py's far reading)
RS_HOLD_MIN = 0.5  # shift37: the score a refresh must reach to extend the hold (a distance of 4 typical distances)
RS_HOLD_N = 32.0  # shift37: readings of hold for the full stretch (4 refreshes)
RS_HOLD_X = 4.0  # shift37: the emission's excess (above the prior tail's level) x this at the full hold
# hold38: on level36's residual path (a daily-cycle series) the hold counts at this share of its pace, and not while
# a road's first weekend is judged (road33's se_wk 1). shift37's full pace there lifted clean weekly roads: of 200
# clean roads of tests/test_detect_reach_score.py's kind (3,000 5-minute readings) 7 had a reading at or above the
# pooled threshold on main, 83 with shift37; 6 with the judged weekend left out, 8 of 100 four-week roads (22 at the
# full pace); benchmarks/README.md, hold38
RS_HOLD_RESID = 0.5

# --- period42: a changed period (`_period`, score-only). A Schmitt trigger around the series' slow level (memory
# PE_LEVEL_MEM readings, so a period of up to ~1,000 readings ripples it little) with a band of PE_K x the mean
# |deviation| from it (noise does not cross twice); a flip of side is confirmed only once the series has held the new
# side PE_DWELL x the learned period (PE_DWELL_GAPS median gaps before any is learned): a burst of a few readings is
# no crossing. Each confirmed crossing gives a full period (up to up, down to down), learned in log (a decaying mean
# and mean square, memory PE_MEM periods, winsorised at PE_Z deviations once judged). Judged only once PE_MIN_N
# periods are learned and their log's spread is at most PE_SD_MAX (the series is periodic at all: irregular
# crossings are never judged); PE_RUN consecutive periods beyond PE_Z deviations and PE_MIN_LOG on one side score
# 1 - the product of their two-sided normal tails, once (the learning then starts afresh on the new period)
PE_LEVEL_MEM = 1024.0  # period42: readings of the level's and the band's memory
PE_K = 0.5  # period42: the band's half-width, in mean |deviations| from the level
PE_DWELL = 0.08  # period42: a flip holds this x the learned period to be confirmed
PE_DWELL_GAPS = 2.0  # period42: ... or this many median gaps before a period is learned
PE_MEM = 16.0  # period42: periods in the learned mean's and spread's memory
PE_MIN_N = 10.0  # period42: periods learned before any is judged
PE_SD_MAX = 0.12  # period42: judged only where the log-periods' spread is at most this (~12 %)
PE_SD_FLOOR = 0.02  # period42: the spread the judgement uses is at least this
PE_Z = 3.0  # period42: a period this many spreads from the learned mean is outside (and learned at most this far)
PE_MIN_LOG = 0.26236426446749106  # period42: ... and at least ln 1.3 from it (30 % shorter or longer)
PE_RUN = 3.0  # period42: consecutive periods outside on one side before the run is scored
PE_AGREE = 0.25  # period42: ... each within this (log) of the one before it in the run (a new period is steady)
PE_MAD_SD = 1.2533141373155003  # period42: a normal spread is this x its mean |deviation| (sqrt(pi / 2))
PE_ZCAP = 8.0  # period42: a period's z counts at most this in the tail

# the kernel's veto per reading (uint8 bits, 1 << detector index): a detector whose statistic
# reached its threshold (score >= 0.5) but whose decision the calibrated tail vetoes
VETO_BIT = {name: 1 << i for i, name in enumerate(DETECTORS)}
