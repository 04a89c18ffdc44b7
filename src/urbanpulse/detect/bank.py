"""DetectorBank: six streaming detectors for many series at once, as numpy arrays per slot.

Why this shape: the live pipeline scores batches of thousands of readings from thousands of series,
and the backtest (`urbanpulse detect`) must reproduce the live scores exactly. So the state of
every series lives in structure-of-arrays numpy tables indexed by a dense slot; a batch is sorted
by (slot, ts) and a Numba-compiled kernel (`_kernel.py`) runs the per-reading state machine
reading by reading, each reading touching only its own slot's row. The tests check it against
its own interpreted source (tests/detect_reference.py): outputs and state bit-identical.
The kernel is loaded (built ahead of time, urbanpulse/aot.py, or by Numba) when the first bank is built.

Guarantees:
- Batch-split invariance. A reading's scores depend only on its slot's state and the reading,
  every state update is elementwise IEEE arithmetic (no reductions across slots; the one
  transcendental, the calibrated score's exp, is the same libm call wherever it runs), and periodic refreshes are scheduled by the slot's own reading
  count, so scoring a stream in one batch or in any chunking gives bit-identical output.
- Readings with ts <= the slot's last scored ts (duplicates, out of order) and non-finite
  values are skipped: not scored, not in the output, state untouched.
- O(1) amortised per reading: the rolling median / MAD (robust_z), the median |change|
  (spike) and the median gap (silence) are recomputed from their ring buffers every
  `REFRESH_EVERY` readings of a slot (and on each of its first `EAGER_REFRESH` readings), i.e.
  O(R log R / REFRESH_EVERY) per reading for rings of R values; the slowly moving ones (the
  window's floor for flatline, the gap median and spread for silence) every 4 x REFRESH_EVERY
  (`_kernel.SLOW_REFRESH`); between refreshes the cached statistics are used.

- Scale-based detectors score only where their scale is defined: robust_z and ewma need a
  non-zero rolling MAD (zero-inflated series such as rain, or a metric resting at a quantised
  floor, would otherwise alert on every departure), spike needs a non-zero change in its window.
- ewma also scores level shifts: a fast EWMA of the readings against the rolling median, in
  units of that distance's own slowly learned typical size, on readings that are not outliers
  themselves (capped at 0.75, so a long excursion still yields one fused score at its onset).

Scores are in [0, 1]; score 0.5 is where a detector's statistic reaches the configured threshold
(z = threshold, gap = factor x interval, run = min_readings ...), and that is its decision; robust_z's
and ewma's decisions also need their weighted score to be rare under the slot's fitted tail (below),
P <= `fusion.alert_tail`, so a decision is consistent with the calibrated score. The kernel writes
the scores and, per reading, which decisions the tail vetoes (layout.VETO_BIT).
The fused `anomaly_score` is the largest weighted detector score, *gated*: it is emitted only
when it beats a decaying memory of the slot's recent peak (half-life `fusion.rearm_half_life`
readings) and is 0 otherwise, so an anomaly yields one high score at its onset instead of a
plateau — what early-detection scoring (NAB) rewards.

The fused score is also the larger of that and an *anomaly likelihood* (after Numenta's
post-processing of HTM scores): a short-term EWMA of the slot's raw (weighted max) score (with
the level-shift statistic also where ewma does not score it, rolling MAD 0) is
compared with the long-run EWMA mean/std of that average (memory `fusion.likelihood_memory`
readings), scored z / (z + `fusion.likelihood_threshold`). It lifts what is unusual for *this*
series -- a run of moderate raw scores after a change of level, variance or pattern that no
single reading makes extreme. The input also carries a *direction-aware* level shift: the same
fast-EWMA-vs-median distance in units of its typical size on the same side (learned separately
above and below the median), so a step in the direction a series rarely moves counts more
(`fusion.likelihood_shift_threshold`), and a *change of spread*: the short-term (~32 readings) RMS change
between readings against its long-run RMS (2,000 readings), so more noise or a faster period, where
every reading moves further than usual and none is an outlier, counts (`fusion.likelihood_spread_threshold`;
two more float64 columns), and a *trend-aware residual*: the reading against a local linear prediction
(Brown's double exponential smoothing), its short-term mean in units of its own long-run RMS
(`fusion.likelihood_trend_threshold`; five more float64 columns). It is gated by its own decaying peak (so it cannot mask a detector
onset that follows) and only emitted above the detectors' peak memory too. It never changes a
detector's decision, so live alerts are untouched. Seven float64 state columns per slot.

The emitted value is *calibrated* (docs/detection.md, "The anomaly score"): 1 - anomaly_score is
P(Q >= q) of the fused statistic q = r / (1 - r) under an exponential tail fitted per slot to its
own exceedances of `fusion.tail_level` (decayed counts, a prior for short histories; three float64
columns), so one threshold means the same false-alarm rate on every series. A second stage
(`fusion.recalibrate_level`) maps that emitted score once more through an exponential tail fitted per
slot to its own *emitted* scores (the likelihood's included; three more float64 columns), so a series
that often emits very high scores has them scaled down; scores only, never a decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from urbanpulse.capacity import grown
from urbanpulse.detect.layout import (DETECTORS, S, SE, SEASON, SEASON_BINS, SI_C0, SI_CAP, SI_CAP_GAPS, SI_CAP_N, SI_Z,
                                     SI_REPEAT, SI_USUAL, STATE, VETO_BIT)
from urbanpulse.detect.profiles import COL, SEVERITIES, ProfileTable
from urbanpulse.detect.settings import DETECTOR_NAMES, DetectionSettings

REFRESH_EVERY = 8
# silence's rarity: the constants the kernel's `_silence` reads (layout.py), so `check_silence` judges a gap as it does
_SI_Z, _SI_C0, _SI_CAP, _SI_CAP_N, _SI_CAP_GAPS = SI_Z, SI_C0, SI_CAP, SI_CAP_N, SI_CAP_GAPS
EAGER_REFRESH = 16
#: "no reading yet" in the bank's last-time array (`last_ts`)
NO_TS = np.iinfo(np.int64).min
_TINY = 1e-300

# columns of the float64 state table (detect/layout.py)
_STATE = STATE
assert tuple(DETECTOR_NAMES) == DETECTORS

_KERNEL = None


def _kernel():  # noqa: ANN202
    """The compiled kernel (on first use: built ahead of time, urbanpulse/aot.py, else Numba's),
    warmed up so the first real batch does not pay for compiling or loading the machine code."""
    global _KERNEL
    if _KERNEL is None:
        from urbanpulse import aot

        k = aot.kernel("urbanpulse.detect._kernel")

        table = ProfileTable(DetectionSettings()).table
        st = np.zeros((1, len(_STATE)), np.float64)
        k.process(np.zeros(1, np.int64), np.ones(1, np.int64), np.zeros(1), np.full(1, NO_TS, np.int64),
                  np.zeros(1, np.int32), table, st, np.full((1, 8), np.nan, np.float32),
                  np.full((1, 8), np.nan, np.float32), np.full((1, 8), np.nan, np.float32),
                  np.zeros((1, len(DETECTOR_NAMES))), np.zeros(1), np.zeros(1, np.uint8),
                  REFRESH_EVERY, EAGER_REFRESH, np.full((1, len(SEASON)), np.nan, np.float32))
        _KERNEL = k
    return _KERNEL


@dataclass
class Scores:
    """Per scored reading (rows in (slot, ts) order): detector scores, decisions and the fused score."""

    index: np.ndarray  # int64 position of the reading in the input arrays
    slot: np.ndarray  # int32
    ts_us: np.ndarray  # int64
    value: np.ndarray  # float64
    score: np.ndarray  # float64 [n, len(names)] in [0, 1]
    decision: np.ndarray  # bool [n, len(names)]
    names: tuple[str, ...]
    anomaly_score: np.ndarray  # float64 [n]: fused, sparse at onsets (what the backtest writes)
    alert: np.ndarray  # bool [n]: any detector's decision

    def __len__(self) -> int:
        return int(self.index.shape[0])


@dataclass
class Silences:
    """Series silent for longer than `factor` x their expected interval at check time."""

    slot: np.ndarray  # int32
    last_ts_us: np.ndarray  # int64
    gap_us: np.ndarray  # int64
    score: np.ndarray  # float64 in [0.5, 1]

    def __len__(self) -> int:
        return int(self.slot.shape[0])


def _ratio_score(stat: np.ndarray, threshold: np.ndarray | float) -> np.ndarray:
    """stat / (stat + threshold): 0 at 0, 0.5 at the threshold, -> 1, never saturating early."""
    return stat / (stat + threshold)


def slot_ts_order(slot: np.ndarray, ts: np.ndarray,
                  value: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of the finite values sorted by (slot, ts), equal keys in input order: exactly
    ``pos[np.lexsort((ts[pos], slot[pos]))]`` with ``pos`` the finite values' positions (the former code), int64;
    with the slots and times in that order (``slot[order]``, ``ts[order]``).

    Why (perf43): that lexsort was the largest cost of a batch outside the kernel (~4 % of the detectors' time).
    A batch's readings of one series nearly always arrive in time order (the service's batches, `urbanpulse detect`,
    history fed to `warm`), and then a stable sort by slot alone is that order: one stable sort of one key (fast on
    a batch made of runs) instead of two. Where a slot's times are not in order in it, the lexsort runs as before.
    Either way the permutation is the same.
    """
    finite = np.isfinite(value)
    if finite.all():  # every position is finite: no indexing by them
        order = np.argsort(slot, kind="stable")
    else:
        pos = np.flatnonzero(finite)
        order = pos[np.argsort(slot[pos], kind="stable")]
    s, t = slot[order], ts[order]
    if len(order) > 1 and ((s[1:] == s[:-1]) & (t[1:] < t[:-1])).any():  # a slot's times out of order
        pos = np.flatnonzero(finite)
        order = pos[np.lexsort((ts[pos], slot[pos]))]
        s, t = slot[order], ts[order]
    return order.astype(np.int64, copy=False), s, t


class DetectorBank:
    """All detectors for all active series; see the module docstring for the contract."""

    def __init__(self, settings: DetectionSettings,
                 expected_interval: Callable[[str, str], float | None] | None = None) -> None:
        self.settings = settings
        self.profiles = ProfileTable(settings, expected_interval)
        cands = self.profiles.candidates()
        # ring sizes: the largest window any profile uses, per ring
        self.ring_values = int(max(p.robust_z.window for p in cands))
        self.ring_changes = int(max(p.spike.window for p in cands))
        self.ring_gaps = int(max(p.silence.window for p in cands))
        enabled = {n for n in DETECTOR_NAMES if any(getattr(p, n).enabled for p in cands)}
        if not any(p.threshold.high is not None or p.threshold.low is not None for p in cands):
            enabled.discard("threshold")
        self.names: tuple[str, ...] = tuple(n for n in DETECTOR_NAMES if n in enabled)
        self._det_cols = np.array([DETECTOR_NAMES.index(n) for n in self.names], np.int64)
        self._veto_bits = np.array([VETO_BIT[n] for n in self.names], np.uint8)
        self.history_needed = max(int(settings.warm_readings), self.ring_values)
        self.capacity = 0
        self.last_ts = np.zeros(0, np.int64)
        self.profile = np.zeros(0, np.int32)
        self.state = np.zeros((0, len(_STATE)), np.float64)
        # float32 offsets from the slot's float64 base (state column "vbase"; _kernel.py says why)
        self.values = np.zeros((0, self.ring_values), np.float32)
        self.changes = np.zeros((0, self.ring_changes), np.float32)
        self.gaps = np.zeros((0, self.ring_gaps), np.float32)  # seconds
        # the likelihood's seasonal input: its daily profile (offsets from state column "se_l") and scales, float32
        self.season = np.zeros((0, len(SEASON)), np.float32)
        _kernel()  # compile / load the kernel now, not on the first batch

    # -- slots -------------------------------------------------------------------------------

    def ensure_capacity(self, n_slots: int) -> None:
        """Grow every per-slot array (by a quarter, capacity.py) to hold at least `n_slots` slots."""
        if n_slots <= self.capacity:
            return
        new = grown(n_slots, self.capacity, 16)
        old = self.capacity

        def grow(a: np.ndarray) -> np.ndarray:
            b = np.zeros((new, *a.shape[1:]), a.dtype)
            b[:old] = a
            return b

        self.last_ts, self.profile, self.state = grow(self.last_ts), grow(self.profile), grow(self.state)
        self.values, self.changes, self.gaps = grow(self.values), grow(self.changes), grow(self.gaps)
        self.season = grow(self.season)
        self.capacity = new
        self._reset(np.arange(old, new))

    def _reset(self, slots: np.ndarray) -> None:
        self.last_ts[slots] = NO_TS
        self.state[slots] = 0.0
        self.state[slots, S["med"]] = np.nan
        self.state[slots, S["mad"]] = np.nan
        self.state[slots, S["dscale"]] = np.nan
        self.state[slots, S["dscale_lr"]] = np.nan
        self.state[slots, S["chg_rms_lr"]] = np.nan
        self.state[slots, S["gap_med"]] = np.nan
        self.state[slots, S["gap_spread"]] = np.nan
        self.state[slots, S["lo_min"]] = np.nan
        self.state[slots, S["lo_q"]] = np.nan
        self.state[slots, S["vbase"]] = np.nan
        self.state[slots, S["rm_slow"]] = np.nan
        self.state[slots, S["rd_slow"]] = np.nan
        self.state[slots, S["rs_rho"]] = np.nan
        self.state[slots, S["rq_slow"]] = np.nan
        self.state[slots, S["rq_l"]] = np.nan
        self.state[slots, S["rq_e"]] = np.nan
        self.values[slots] = np.nan
        self.changes[slots] = np.nan
        self.gaps[slots] = np.nan
        self.season[slots] = 0.0
        self.season[slots, :SEASON_BINS] = np.nan  # the daily profile's bins: not seen yet
        self.season[slots, SE["w0"]:SE["w0"] + SEASON_BINS] = np.nan  # the weekend's (road33): the same
        self.season[slots, SE["c0"]:SE["c0"] + SEASON_BINS] = np.nan  # drop43's hourly mean counts: the same

    def assign(self, slots: np.ndarray, sensor_ids: list[str], metrics: list[str]) -> None:
        """(Re)configure these slots for their (sensor, metric) from the config and reset their state."""
        slots = np.asarray(slots, np.int64)
        if len(slots) != len(sensor_ids) or len(slots) != len(metrics):
            raise ValueError("assign: slots, sensor_ids and metrics must have the same length")
        if len(slots):
            self.ensure_capacity(int(slots.max()) + 1)
        self.profile[slots] = self.profiles.profile_ids(sensor_ids, metrics)
        self._reset(slots)

    def evict(self, slots: np.ndarray) -> None:
        """Forget these slots (state reset, default profile) so they can be reused."""
        slots = np.asarray(slots, np.int64)
        slots = slots[slots < self.capacity]
        self.profile[slots] = 0
        self._reset(slots)

    def severity(self, slot: int, detector: str) -> str:
        """Configured severity of `detector`'s alerts for this slot's profile."""
        pid = int(self.profile[slot]) if 0 <= slot < self.capacity else 0
        return SEVERITIES[int(self.profiles.severity[pid, DETECTOR_NAMES.index(detector)])]

    def nbytes_per_slot(self) -> int:
        """Bytes of per-slot state (state table, rings, seasonal table, last ts, profile id)."""
        return int(8 + 4 + 8 * len(_STATE) + 4 * self.ring_values + 4 * self.ring_changes + 4 * self.ring_gaps
                   + 4 * len(SEASON))

    # -- scoring -------------------------------------------------------------------------------

    def warm(self, slot: np.ndarray, ts_us: np.ndarray, value: np.ndarray) -> None:
        """Feed stored history through the detectors without producing output."""
        self._process(slot, ts_us, value, emit=False)

    def score(self, slot: np.ndarray, ts_us: np.ndarray, value: np.ndarray) -> Scores:
        """Score a batch (any order); see the module docstring for what is skipped."""
        out = self._process(slot, ts_us, value, emit=True)
        assert out is not None
        return out

    def _scorable(self, slot: np.ndarray, ts_us: np.ndarray,
                  value: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The readings to score, in (slot, ts) order: finite values newer than their slot's last
        scored reading (of equal timestamps in a batch, the first). Returns their positions in
        the input, slots, times and values."""
        slot = np.asarray(slot, np.int64)
        ts = np.asarray(ts_us, np.int64)
        val = np.asarray(value, np.float64)
        if not (len(slot) == len(ts) == len(val)):
            raise ValueError("score: slot, ts_us and value must have the same length")
        if len(slot) and (slot.min() < 0 or slot.max() >= self.capacity):
            raise ValueError("score: slot out of range; call ensure_capacity/assign first")
        order, s, t = slot_ts_order(slot, ts, val)
        keep = t > self.last_ts[s]
        if len(s) > 1:
            same = s[1:] == s[:-1]
            keep[1:] &= ~(same & (t[1:] <= t[:-1]))  # equal ts within the batch: first one wins
        if keep.all():  # perf43: the usual batch, nothing skipped: its slots and times are gathered already
            return order, s, t, val[order]
        order = order[keep]
        return order, s[keep], t[keep], val[order]

    def _result(self, order: np.ndarray, s: np.ndarray, t: np.ndarray, x: np.ndarray, out: np.ndarray,
                fused: np.ndarray, veto: np.ndarray) -> Scores:
        """Scores of the enabled detectors (columns in ``names`` order) with their decisions: the
        statistic at its threshold (score >= 0.5) unless the calibrated tail vetoed it (layout.VETO_BIT)."""
        score = out[:, self._det_cols]
        decision = score >= 0.5
        vetoed = np.flatnonzero(veto)
        if len(vetoed):
            bits = veto[vetoed, None] & self._veto_bits[None, :]
            decision[vetoed] &= bits == 0
        return Scores(index=order.astype(np.int64, copy=False), slot=s.astype(np.int32), ts_us=t, value=x,
                      score=score, decision=decision, names=self.names, anomaly_score=fused,
                      alert=decision.any(axis=1) if len(self.names) else np.zeros(len(order), bool))

    def _process(self, slot: np.ndarray, ts_us: np.ndarray, value: np.ndarray, emit: bool) -> Scores | None:
        order, s, t, x = self._scorable(slot, ts_us, value)
        n = len(order)
        # perf43: not zeroed, the kernel writes every row of all three (`_readings`: out[i, 0..5], fused_out[i],
        # veto_out[i] for every reading i)
        out = np.empty((n, len(DETECTOR_NAMES)), np.float64)
        fused = np.empty(n, np.float64)
        veto = np.empty(n, np.uint8)
        if n:
            # one reading at a time in (slot, ts) order: the scalar form of the former rounds
            # (tests/detect_reference.py runs the same source interpreted: bit-identical output)
            _kernel().process(s, t, x, self.last_ts, self.profile, self.profiles.table, self.state,
                              self.values, self.changes, self.gaps, out, fused, veto,
                              REFRESH_EVERY, EAGER_REFRESH, self.season)
        if not emit:
            return None
        return self._result(order, s, t, x, out, fused, veto)

    # -- live silence ----------------------------------------------------------------------------

    def check_silence(self, slots: np.ndarray, now_event_us: np.ndarray, now_wall_us: int) -> Silences:
        """Series among `slots` whose gap since their last reading exceeds factor x expected interval.

        The gap is measured against `now_event_us` (per slot: the source's event-time watermark), or
        against `now_wall_us` where that is negative/unknown, so replays of old data are judged in
        their own time and live sensors by the clock.
        """
        slots = np.asarray(slots, np.int64)
        now_ev = np.asarray(now_event_us, np.int64)
        now_ev = np.full(slots.shape, int(now_ev), np.int64) if now_ev.ndim == 0 else now_ev
        valid = (slots >= 0) & (slots < self.capacity)
        slots, now_ev = slots[valid], now_ev[valid]
        P = self.profiles.table[self.profile[slots]]
        st = self.state[slots]
        last = self.last_ts[slots]
        now = np.where(now_ev >= 0, now_ev, np.int64(now_wall_us))
        gap = now - last
        with np.errstate(invalid="ignore", divide="ignore"):
            conf = P[:, COL["si_interval_us"]]
            learned_ok = st[:, S["count"]] >= P[:, COL["si_min"]]
            g_med, g_spread = st[:, S["gap_med"]], st[:, S["gap_spread"]]
            irr = P[:, COL["si_irregularity"]]
            learned = g_med + np.where(g_spread > 0, irr * g_spread, 0.0)  # as the kernel
            expected = np.where(np.isnan(conf), np.where(learned_ok, learned * 1e6, np.nan), conf)
            excess = np.maximum(gap / expected - 1.0, 0.0)
            # the rarity of long gaps, as the kernel (`_silence`): a long gap, once enough are counted, is judged
            # against the larger of the tail's q* and the interval, at most SI_CAP x the longest usual gap
            factor = P[:, COL["si_factor"]]
            med_us = g_med * 1e6
            si_k, si_n, si_e = st[:, S["si_k"]], st[:, S["si_n"]], st[:, S["si_e"]]
            m_now = (si_e + P[:, COL["si_m0"]] * _SI_C0) / (si_k + _SI_C0)
            k_lo = si_k - _SI_Z * np.sqrt(si_k)
            ln_ratio = np.log(np.maximum(k_lo, 0.0) / (si_n + P[:, COL["si_n0"]])) - P[:, COL["si_lnp"]]
            q_rare = np.where(ln_ratio > 0, factor + m_now * ln_ratio, factor)
            judged = (gap >= factor * med_us) & np.isnan(conf) & (si_k > _SI_Z * _SI_Z)
            cap = np.maximum(_SI_CAP * 1e6 * st[:, S["si_max"]], factor * med_us) / factor
            expected = np.where(judged, np.maximum(expected, q_rare * med_us / factor), expected)
            capped = judged & (si_k >= _SI_CAP_N) & (si_n >= _SI_CAP_GAPS)
            expected = np.where(capped, np.minimum(expected, cap), expected)
            excess = np.maximum(gap / expected - 1.0, 0.0)
            sc = _ratio_score(excess, P[:, COL["si_factor"]] - 1.0)
            # rep41, as the kernel: a gap up to SI_REPEAT x the longest the series has shown is not silent
            usual = (sc >= 0.5) & np.isnan(conf) & (gap <= SI_REPEAT * 1e6 * st[:, S["si_rep"]])
            sc = np.where(usual, SI_USUAL, sc)
        hit = (last != NO_TS) & (P[:, COL["on_silence"]] > 0) & np.isfinite(sc) & (sc >= 0.5)
        return Silences(slot=slots[hit].astype(np.int32), last_ts_us=last[hit], gap_us=gap[hit], score=sc[hit])
