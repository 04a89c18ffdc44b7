"""The numpy reference implementation of DetectorBank scoring (tests only).

This is the round-based implementation DetectorBank used before its per-reading state machine
moved into a Numba kernel (`_kernel.py`): a batch is sorted by (slot, ts) and round k scores the
k-th reading of every series in the batch with vectorised numpy calls. It is the specification
the kernel is tested against (tests/test_detectors.py: outputs and state bit-identical); the
service never uses it. Slot management (capacity, assign, evict, state layout) is shared with
DetectorBank, and so are the input ordering, the output and the live silence check; only the
scoring itself is re-implemented here.
"""

from __future__ import annotations

import numpy as np

from urbanpulse.detect.bank import _TINY, EAGER_REFRESH, REFRESH_EVERY, S, DetectorBank, Scores, _ratio_score
from urbanpulse.detect.profiles import COL
from urbanpulse.detect.settings import DETECTOR_NAMES


class ReferenceBank(DetectorBank):
    """DetectorBank with the original round-based numpy scoring (the kernel's specification)."""

    def _process(self, slot: np.ndarray, ts_us: np.ndarray, value: np.ndarray, emit: bool) -> Scores | None:
        order, s, t, x = self._scorable(slot, ts_us, value)
        n, k = len(order), len(self.names)
        score = np.zeros((n, k), np.float64)
        fused = np.zeros(n, np.float64)
        if n:
            newgrp = np.ones(n, bool)
            newgrp[1:] = s[1:] != s[:-1]
            starts = np.flatnonzero(newgrp)
            rank = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
            by_round = np.argsort(rank, kind="stable")
            bounds = np.searchsorted(rank[by_round], np.arange(int(rank.max()) + 2))
            for r in range(len(bounds) - 1):
                rows = by_round[bounds[r]:bounds[r + 1]]
                all_scores, fused[rows] = self._round(s[rows], t[rows], x[rows])
                score[rows] = all_scores[:, self._det_cols]
        if not emit:
            return None
        return self._result(order, s, t, x, score, fused)

    def _round(self, sl: np.ndarray, t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score one reading of each slot in `sl` (distinct slots) and update their state."""
        prof = self.profile[sl]
        # the common case: every series in the round has the same profile; one row then broadcasts
        # over the round (same arithmetic per element, no per-slot copy of the parameter table)
        P = self.profiles.table[prof[:1]] if (prof == prof[0]).all() else self.profiles.table[prof]
        st = self.state[sl]
        m = len(sl)
        out = np.zeros((m, len(DETECTOR_NAMES)), np.float64)
        cnt = st[:, S["count"]]
        last = self.last_ts[sl]
        has_prev = cnt > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            # silence: the first reading after a gap of > factor x expected interval
            gap = np.where(has_prev, (t - last).astype(np.float64), np.nan)
            conf = P[:, COL["si_interval_us"]]
            learned_ok = cnt >= P[:, COL["si_min"]]
            expected = np.where(np.isnan(conf), np.where(learned_ok, st[:, S["gap_med"]] * 1e6, np.nan), conf)
            excess = np.maximum(gap / expected - 1.0, 0.0)
            sil = _ratio_score(excess, P[:, COL["si_factor"]] - 1.0)
            out[:, 5] = np.where(np.isfinite(sil), sil, 0.0) * P[:, COL["on_silence"]]

            # robust_z against the cached rolling median / MAD (floor: a quarter EWMA std). Only where
            # the scale is defined: with MAD = 0 at least half the window sits at one value (rain = 0,
            # a quantised floor), any departure would be "infinitely many MADs" -- those zero-inflated
            # series are left to spike (own scale of changes) and threshold
            ew_std = np.sqrt(st[:, S["ew_v"]])
            med = st[:, S["med"]]
            scaled = st[:, S["mad"]] > 0
            rscale = np.fmax(np.fmax(1.4826 * st[:, S["mad"]], 0.25 * ew_std), 1e-9 * np.abs(med) + _TINY)
            z = np.abs(x - med) / rscale
            rz = _ratio_score(z, P[:, COL["rz_threshold"]])
            ok = (cnt >= P[:, COL["rz_min"]]) & np.isfinite(rz) & scaled
            out[:, 1] = np.where(ok, rz, 0.0) * P[:, COL["on_robust_z"]]

            # ewma bands (before this reading updates them); like robust_z only where the rolling scale
            # is defined (a dry spell decays the EWMA std to nothing, then every shower "breaks" it)
            ew_m = st[:, S["ew_m"]]
            escale = np.maximum(ew_std, 1e-9 * np.abs(ew_m) + _TINY)
            ez = np.abs(x - ew_m) / escale
            es = _ratio_score(ez, P[:, COL["ew_threshold"]])
            ok = (cnt >= P[:, COL["ew_min"]]) & np.isfinite(es) & scaled
            es = np.where(ok, es, 0.0)
            # level shift: a fast EWMA of the readings (this one included) against the rolling median,
            # in units of that distance's own typical size (learned slowly, so autocorrelated series
            # are judged against their usual excursions, white noise against its much smaller ones)
            sh_a = P[:, COL["sh_alpha"]]
            sh_m = np.where(has_prev, st[:, S["sh_m"]] + sh_a * (x - st[:, S["sh_m"]]), x)
            sh_d = np.abs(sh_m - med)
            sh_s = st[:, S["sh_s"]]
            sh_scale = np.fmax(sh_s, 0.05 * 1.4826 * st[:, S["mad"]])
            shs = _ratio_score(sh_d / sh_scale, P[:, COL["sh_threshold"]])
            warm = st[:, S["sh_n"]] >= np.maximum(P[:, COL["ew_min"]], 0.25 / P[:, COL["sh_decay"]])
            # only for readings that are not outliers themselves (those already score on the band and
            # robust_z), so a long large excursion still gives one fused score at its onset; capped at
            # 0.75 (evidence accumulated over readings) so it cannot out-score a recent onset's peak
            quiet = (es < 0.5) & (out[:, 1] < 0.5)
            shs = np.where(warm & scaled & quiet & (sh_s > 0) & np.isfinite(shs), np.minimum(shs, 0.75), 0.0)
            out[:, 2] = np.maximum(es, shs) * P[:, COL["on_ewma"]]

            # spike: change vs the robust scale of recent changes; the change is also measured from the
            # reading before the previous one and the smaller counts, so the return after a one-reading
            # spike is not a second spike
            prev = st[:, S["prev"]]
            change = np.abs(x - prev)
            back = np.abs(x - st[:, S["base"]])
            dchange = np.where(np.isfinite(back), np.minimum(change, back), change)
            dscale = np.fmax(np.fmax(1.4826 * st[:, S["dscale"]], 0.1 * 1.4826 * st[:, S["mad"]]),
                             1e-9 * np.abs(prev) + _TINY)
            sp = _ratio_score(dchange / dscale, P[:, COL["sp_threshold"]])
            # no non-zero change in the window (a long dry / stuck stretch): the scale of changes is
            # unknown, so the first change is not a spike
            ok = (cnt >= P[:, COL["sp_min"]]) & np.isfinite(sp) & np.isfinite(st[:, S["dscale"]])
            sp = np.where(ok, sp, 0.0)
            out[:, 3] = sp * P[:, COL["on_spike"]]

            # flatline: readings (and time) within tolerance of the run's first value
            same = has_prev & (np.abs(x - st[:, S["fl_ref"]]) <= P[:, COL["fl_tolerance"]])
            run = np.where(same, st[:, S["fl_run"]] + 1.0, 1.0)
            fl_start = np.where(same, st[:, S["fl_start"]], t.astype(np.float64))
            # a run at the series' usual floor (within the lowest ~5 % of the recent window, not below
            # its minimum: so2 resting at a quantised 2 ug/m3) is where the series normally sits, not a
            # stuck sensor; a run at a mid-range value, or below anything seen recently, still counts
            at_floor = (x >= st[:, S["lo_min"]] - P[:, COL["fl_tolerance"]]) & (x <= st[:, S["lo_q"]])
            varying = ((st[:, S["mad"]] > 0) & ~at_floor) | (P[:, COL["fl_only_varying"]] == 0)
            fl_ok = np.where(same, st[:, S["fl_ok"]], varying.astype(np.float64))
            n_min = P[:, COL["fl_min_readings"]]
            rs = np.where(run >= 2, _ratio_score(run - 1.0, n_min - 1.0), 0.0)
            dur = t.astype(np.float64) - fl_start
            ds = np.where(run >= 2, _ratio_score(dur, P[:, COL["fl_min_duration_us"]]), 0.0)
            fs = np.maximum(rs, np.where(np.isfinite(ds), ds, 0.0)) * fl_ok
            out[:, 4] = fs * P[:, COL["on_flatline"]]

            # threshold with hysteresis
            hi, lo = P[:, COL["thr_high"]], P[:, COL["thr_low"]]
            chi, clo = P[:, COL["thr_clear_high"]], P[:, COL["thr_clear_low"]]
            on = st[:, S["thr_on"]] > 0
            raise_ = (x > hi) | (x < lo)
            inside = ~(x > chi) & ~(x < clo)
            now_on = np.where(on, ~inside, raise_)
            out[:, 0] = now_on * P[:, COL["on_threshold"]]

            # fused, gated by the decaying peak
            weights = P[:, COL["w_threshold"]:COL["w_silence"] + 1]
            raw = (out * weights).max(axis=1)
            # anomaly likelihood (Numenta-style): the short-term average of this slot's raw score against
            # the long-run mean/std of that average; a raw score that is unusual for this series counts
            li_n, li_m, li_v = st[:, S["li_n"]], st[:, S["li_m"]], st[:, S["li_v"]]
            # its input also sees the level-shift statistic where ewma does not score it (rolling MAD 0:
            # quantised series, e.g. a flow meter stepping between a few values), so a sustained shift of
            # such a series shows in the average (input only: no detector score changes)
            shu = _ratio_score(sh_d / np.fmax(sh_s, _TINY), P[:, COL["sh_threshold"]])
            shu = np.where(warm & (sh_s > 0) & np.isfinite(shu), np.minimum(shu, 0.75), 0.0)
            # and a direction-aware level shift: the same distance in units of its typical size on its
            # own side (learned separately above and below the median), so a step in the direction the
            # series rarely moves counts (a drop of a series that only spikes upwards)
            sdir = sh_m - med
            sh_sp, sh_sn = st[:, S["sh_sp"]], st[:, S["sh_sn"]]
            side = np.where(sdir > 0, sh_sp, sh_sn)
            ls_thr = P[:, COL["ls_thr"]]
            dsu = _ratio_score(sh_d / np.fmax(np.fmax(side, P[:, COL["ls_floor"]] * sh_s), _TINY), ls_thr)
            use = (ls_thr > 0) & warm & (sh_s > 0) & np.isfinite(dsu)
            shu = np.where(use, np.maximum(shu, np.minimum(dsu, 0.75)), shu)
            li_in = np.maximum(raw, shu)
            li_s = np.where(li_n > 0, st[:, S["li_s"]] + P[:, COL["li_alpha"]] * (li_in - st[:, S["li_s"]]), li_in)
            li_z = (li_s - li_m) / np.maximum(np.sqrt(li_v), 1e-9 * np.abs(li_m) + 1e-12)
            lis = _ratio_score(np.maximum(li_z, 0.0), P[:, COL["li_thr"]])
            lis = np.where((li_n >= P[:, COL["li_min"]]) & np.isfinite(lis), lis, 0.0)
            lis = P[:, COL["li_w"]] * lis
            peak = st[:, S["peak"]]
            fused = np.where(raw > peak, raw, 0.0)
            bumped = np.where(fused > 0, raw + P[:, COL["fu_bump"]] * (1.0 - raw), raw)
            new_peak = np.maximum(peak * P[:, COL["fu_decay"]], bumped)
            # the likelihood has its own decaying peak memory (same half-life and bump), so an emitted
            # likelihood does not mask a detector onset that follows it; it is emitted only above both
            # memories (not again during an excursion the detectors already reported)
            li_peak = st[:, S["li_peak"]]
            li_f = np.where((lis > li_peak) & (lis > peak), lis, 0.0)
            li_bumped = np.where(li_f > 0, lis + P[:, COL["fu_bump"]] * (1.0 - lis), lis)
            new_li_peak = np.maximum(li_peak * P[:, COL["fu_decay"]], li_bumped)
            fused = np.maximum(fused, li_f)

            # --- state updates --------------------------------------------------------------------
            a = P[:, COL["ew_alpha"]]
            d = x - ew_m
            lim = 4.0 * ew_std
            d = np.where(cnt >= P[:, COL["ew_min"]], np.clip(d, -lim, lim), d)  # winsorised once trusted
            new_m = np.where(has_prev, ew_m + a * d, x)
            new_v = np.where(has_prev, (1.0 - a) * (st[:, S["ew_v"]] + a * d * d), 0.0)

        new_cnt = cnt + 1.0
        ci = cnt.astype(np.int64)
        self.values[sl, ci % self.ring_values] = x
        # zero changes are left out of the spike scale: a stuck stretch or a quantised metric would
        # otherwise shrink it to nothing and make every ordinary step a "spike"
        self.changes[sl, ci % self.ring_changes] = np.where(has_prev & (change > 0), change, np.nan)
        self.gaps[sl, ci % self.ring_gaps] = np.where(has_prev, gap / 1e6, np.nan)

        st[:, S["base"]] = np.where(has_prev, prev, np.nan)  # before "prev" is overwritten (prev is a view)
        st[:, S["count"]] = new_cnt
        st[:, S["ew_m"]] = new_m
        st[:, S["ew_v"]] = new_v
        st[:, S["prev"]] = x
        st[:, S["fl_ref"]] = np.where(same, st[:, S["fl_ref"]], x)
        st[:, S["fl_run"]] = run
        st[:, S["fl_start"]] = fl_start
        st[:, S["fl_ok"]] = fl_ok
        st[:, S["thr_on"]] = now_on
        st[:, S["peak"]] = new_peak
        st[:, S["sh_m"]] = sh_m
        dd = np.where(np.isfinite(sh_d), sh_d, 0.0)
        dd = np.where(sh_s > 0, np.minimum(dd, 3.0 * sh_s), dd)  # a shift does not teach its own scale at once
        sh_n = st[:, S["sh_n"]]
        learn = has_prev & np.isfinite(med)
        rate = np.maximum(P[:, COL["sh_decay"]], 1.0 / (sh_n + 1.0))  # plain mean until the memory is full
        st[:, S["sh_s"]] = np.where(learn, sh_s + rate * (dd - sh_s), sh_s)
        st[:, S["sh_n"]] = np.where(learn, sh_n + 1.0, sh_n)
        fin = np.isfinite(sdir)
        dp = np.where(fin, np.maximum(sdir, 0.0), 0.0)
        dn = np.where(fin, np.maximum(-sdir, 0.0), 0.0)
        dp = np.where(sh_sp > 0, np.minimum(dp, 3.0 * sh_sp), dp)
        dn = np.where(sh_sn > 0, np.minimum(dn, 3.0 * sh_sn), dn)
        st[:, S["sh_sp"]] = np.where(learn, sh_sp + rate * (dp - sh_sp), sh_sp)
        st[:, S["sh_sn"]] = np.where(learn, sh_sn + rate * (dn - sh_sn), sh_sn)

        li_rate = np.maximum(P[:, COL["li_rate"]], 1.0 / (li_n + 1.0))  # plain mean until the memory is full
        li_d = li_s - li_m
        st[:, S["li_m"]] = li_m + li_rate * li_d
        st[:, S["li_v"]] = (1.0 - li_rate) * (li_v + li_rate * li_d * li_d)
        st[:, S["li_s"]] = li_s
        st[:, S["li_n"]] = li_n + 1.0
        st[:, S["li_peak"]] = new_li_peak

        nc = new_cnt.astype(np.int64)
        refresh = (nc <= EAGER_REFRESH) | (nc % REFRESH_EVERY == 0)
        if refresh.any():
            idx = np.flatnonzero(refresh)
            self._refresh(sl[idx], nc[idx], P if len(P) == 1 else P[idx], st, idx)
        self.state[sl] = st
        self.last_ts[sl] = t
        return out, fused

    def _refresh(self, sl: np.ndarray, nc: np.ndarray, P: np.ndarray, st: np.ndarray, rows: np.ndarray) -> None:
        """Recompute rolling medians (values, MAD, |changes|, gaps) for these slots from their rings."""
        def window_of(ring: np.ndarray, window: np.ndarray) -> np.ndarray:
            """The ring's newest `window` entries per row, NaN elsewhere, in ring order: medians
            and quantiles do not depend on order, so this is a plain row gather (plus a mask
            only when a profile's window is shorter than the ring)."""
            R = ring.shape[1]
            vals = ring[sl].astype(np.float64)
            w = np.minimum(window, R)
            if (w >= R).all():
                return vals
            age = (nc[:, None] - 1 - np.arange(R)[None, :]) % R
            return np.where(age < w[:, None], vals, np.nan)

        def median_of_sorted(a: np.ndarray) -> np.ndarray:
            """Row medians of `a`, sorted along axis 1 with NaN (missing) last."""
            k = np.isfinite(a).sum(axis=1)
            lo = np.maximum((k - 1) // 2, 0)
            hi = np.minimum(k // 2, a.shape[1] - 1)
            m = 0.5 * (np.take_along_axis(a, lo[:, None], 1)[:, 0] + np.take_along_axis(a, hi[:, None], 1)[:, 0])
            return np.where(k > 0, m, np.nan)

        vals = window_of(self.values, P[:, COL["rz_window"]].astype(np.int64))
        srt = np.sort(vals, axis=1)  # NaN sorts last
        k = np.isfinite(srt).sum(axis=1)
        st[rows, S["lo_min"]] = srt[:, 0]
        st[rows, S["lo_q"]] = np.where(k > 0, srt[np.arange(len(k)), np.maximum(k // 20, 0)], np.nan)
        med = median_of_sorted(srt)
        st[rows, S["med"]] = med
        st[rows, S["mad"]] = median_of_sorted(np.sort(np.abs(vals - med[:, None]), axis=1))
        changes = window_of(self.changes, P[:, COL["sp_window"]].astype(np.int64))
        st[rows, S["dscale"]] = median_of_sorted(np.sort(changes, axis=1))
        gaps = window_of(self.gaps, P[:, COL["si_window"]].astype(np.int64))
        st[rows, S["gap_med"]] = median_of_sorted(np.sort(gaps, axis=1))
