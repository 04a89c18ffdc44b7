"""Resolve detector parameters per (sensor, metric) into rows of a numpy parameter table.

The bank keeps one int32 profile id per slot; the parameters themselves live once per distinct
profile (a (matching groups, metric) pair), so configuring 100,000 series from the same few
profiles costs a dictionary lookup each, and a scoring round gathers every parameter of its
slots with a single fancy index.
"""

from __future__ import annotations

from collections.abc import Callable
import math
from fnmatch import fnmatchcase

import numpy as np

# COL is re-exported (``as COL``: ruff F401 then knows): bank.py and tests/test_detectors.py import it from here
from urbanpulse.detect.layout import COL as COL
from urbanpulse.detect.layout import PARAMS
from urbanpulse.detect.settings import DETECTOR_NAMES, DetectionSettings, DetectorParams, FusionSettings

# Column layout of the parameter table (detect/layout.py).
COLUMNS: tuple[str, ...] = PARAMS
SEVERITIES = ("info", "warning", "critical")
LONG_RUN_READINGS = 2000.0  # memory of the long-run spreads (scale floors of ewma, robust_z, spike)
SPREAD_SHORT_READINGS = 32.0  # memory of the short-term mean square change (the likelihood's change-of-spread input)
TREND_SHORT_READINGS = 16.0  # memory of the short-term mean residual against the local linear prediction (trend input)
TAIL_PRIOR_TAILS = 2.0  # pseudo-exceedances behind the prior mean excess of the calibrated tail


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def param_row(p: DetectorParams, fusion: FusionSettings) -> np.ndarray:
    """One profile's parameters as a float64 row in COLUMNS order."""
    t = p.threshold
    values: dict[str, float] = {}
    for name in DETECTOR_NAMES:
        d = getattr(p, name)
        values[f"on_{name}"] = float(d.enabled)
        values[f"w_{name}"] = float(d.weight)
    values.update(
        thr_high=_nan(t.high), thr_low=_nan(t.low),
        thr_clear_high=_nan(t.clear_high if t.clear_high is not None else t.high),
        thr_clear_low=_nan(t.clear_low if t.clear_low is not None else t.low),
        rz_window=p.robust_z.window, rz_threshold=p.robust_z.threshold, rz_min=p.robust_z.min_history,
        ew_alpha=p.ewma.alpha, ew_threshold=p.ewma.threshold, ew_min=p.ewma.min_history,
        sh_alpha=p.ewma.shift_alpha, sh_threshold=p.ewma.shift_threshold, sh_decay=1.0 / p.ewma.shift_memory,
        sp_window=p.spike.window, sp_threshold=p.spike.threshold, sp_min=p.spike.min_history,
        fl_min_readings=p.flatline.min_readings,
        fl_min_duration_us=math.inf if p.flatline.min_duration_s is None else p.flatline.min_duration_s * 1e6,
        fl_tolerance=p.flatline.tolerance, fl_only_varying=float(p.flatline.only_if_varying),
        si_factor=p.silence.factor,
        si_interval_us=_nan(None if p.silence.expected_interval_s is None else p.silence.expected_interval_s * 1e6),
        si_window=p.silence.window, si_min=p.silence.min_history,
        fu_decay=0.5 ** (1.0 / fusion.rearm_half_life), fu_bump=fusion.rearm_bump,
        li_w=fusion.likelihood_weight, li_rate=1.0 / fusion.likelihood_memory, li_alpha=fusion.likelihood_alpha,
        li_thr=fusion.likelihood_threshold, li_min=fusion.likelihood_min_history,
        ls_thr=fusion.likelihood_shift_threshold, ls_floor=fusion.likelihood_shift_floor,
        fl_learn=p.flatline.learn_factor, fl_decay=0.5 ** (1.0 / p.flatline.learn_memory),
        sp_floor=p.spike.spread_floor, ew_floor=p.ewma.spread_floor, lr_rate=1.0 / LONG_RUN_READINGS,
        si_irregularity=p.silence.irregularity,
        tl_u=fusion.tail_level, tl_decay=1.0 - 1.0 / fusion.tail_memory, tl_n0=fusion.tail_prior_readings,
        tl_k0=fusion.tail_prior_rate * fusion.tail_prior_readings, tl_e0=fusion.tail_prior_excess * TAIL_PRIOR_TAILS,
        tl_c0=TAIL_PRIOR_TAILS, al_tail=fusion.alert_tail,
        nz_thr=fusion.likelihood_spread_threshold, nz_rate=1.0 / SPREAD_SHORT_READINGS,
        tr_thr=fusion.likelihood_trend_threshold, tr_alpha=fusion.likelihood_trend_alpha,
        tr_rate=1.0 / TREND_SHORT_READINGS, tr_slope=fusion.likelihood_trend_alpha / (1.0 - fusion.likelihood_trend_alpha),
        tr_w=(1.0 / TREND_SHORT_READINGS) / (2.0 - 1.0 / TREND_SHORT_READINGS),
        rc_y0=-math.log(1.0 - fusion.recalibrate_level) if fusion.recalibrate_level > 0 else 0.0,
        rc_decay=1.0 - 1.0 / fusion.recalibrate_memory, rc_n0=fusion.recalibrate_prior_readings,
        rc_k0=(1.0 - fusion.recalibrate_level) * fusion.recalibrate_prior_readings,
        rc_e0=(1.0 - fusion.recalibrate_level) * fusion.recalibrate_prior_readings,
        dt_stretch=fusion.detector_tail_stretch,
        env_k=p.ewma.envelope_threshold, env_g=p.ewma.envelope_growth, env_min=p.ewma.envelope_min_history,
        env_decay=1.0 / p.ewma.envelope_memory,
        xr_thr=p.ewma.reach_threshold, xr_min=p.ewma.reach_min_history,
        cr_thr=p.ewma.count_threshold, cr_lnk=math.log(p.ewma.count_factor), cr_km1=p.ewma.count_factor - 1.0,
        se_thr=fusion.likelihood_season_threshold, se_per_us=1.0 / (fusion.likelihood_season_level_hours * 3.6e9),
        se_gamma=fusion.likelihood_season_gamma, se_amp=fusion.likelihood_season_min_amplitude,
        si_lnp=math.log(p.silence.rarity) if p.silence.rarity > 0 else math.inf,  # +inf: rarity off
        si_decay=1.0 - 1.0 / p.silence.rarity_memory, si_n0=p.silence.rarity_prior_gaps,
        si_m0=p.silence.rarity_prior_excess,
    )
    if not (t.high is not None or t.low is not None):
        values["on_threshold"] = 0.0  # enabled without limits would never fire: treat as off
    return np.array([values[c] for c in COLUMNS], dtype=np.float64)


class ProfileTable:
    """Distinct parameter profiles, their table rows and per-detector severities."""

    def __init__(self, settings: DetectionSettings,
                 expected_interval: Callable[[str, str], float | None] | None = None) -> None:
        self.settings = settings
        #: the sensor registry's expected reporting interval of a series (seconds, or None):
        #: silence judges gaps against it where the config leaves the interval to be learned
        self.expected_interval = expected_interval
        self._ids: dict[tuple[tuple[int, ...], str, float | None], int] = {}
        self._groups_of_sensor: dict[str, tuple[int, ...]] = {}
        self.params: list[DetectorParams] = []
        self.table = np.zeros((0, len(COLUMNS)), np.float64)
        self.severity = np.zeros((0, len(DETECTOR_NAMES)), np.int8)  # index into SEVERITIES
        self.resolve_params(())  # profile 0: defaults, also what an unassigned slot uses

    def candidates(self) -> list[DetectorParams]:
        """Every parameter set a single layer can produce (for sizing ring buffers)."""
        s = self.settings
        out = [s.defaults]
        out += [s.defaults.patched(p) for p in s.metrics.values()]
        out += [s.defaults.patched(g.detectors) for g in s.groups]
        return out

    def _groups(self, sensor_id: str) -> tuple[int, ...]:
        if not self.settings.groups:  # nothing to match: no cache entry per sensor (~40 bytes a series)
            return ()
        hit = self._groups_of_sensor.get(sensor_id)
        if hit is None:
            hit = tuple(i for i, g in enumerate(self.settings.groups)
                        if any(fnmatchcase(sensor_id, pat) for pat in g.sensors))
            if len(self._groups_of_sensor) > 200_000:
                self._groups_of_sensor.clear()  # bounded: a cache, not state
            self._groups_of_sensor[sensor_id] = hit
        return hit

    def resolve_params(self, groups: tuple[int, ...], metric: str = "", registered_interval_s: float | None = None) -> int:
        """Profile id for these matching groups and this metric (created on first use).

        ``registered_interval_s`` (from the sensor registry) sets silence's expected interval
        unless the config sets one for this metric or group: an explicit setting wins, the
        registry comes next, and only without either is the interval learned from the gaps."""
        key = (groups, metric, registered_interval_s)
        pid = self._ids.get(key)
        if pid is not None:
            return pid
        s = self.settings
        p = s.defaults
        if metric in s.metrics:
            p = p.patched(s.metrics[metric])
        for gi in groups:
            g = s.groups[gi]
            if not g.metrics or metric in g.metrics:
                p = p.patched(g.detectors)
        if registered_interval_s is not None and p.silence.expected_interval_s is None:
            p = p.patched({"silence": {"expected_interval_s": registered_interval_s}})
        pid = len(self.params)
        self.params.append(p)
        self.table = np.vstack([self.table, param_row(p, s.fusion)])
        sev = [SEVERITIES.index(getattr(p, n).severity) for n in DETECTOR_NAMES]
        self.severity = np.vstack([self.severity, np.array(sev, np.int8)])
        self._ids[key] = pid
        return pid

    def profile_ids(self, sensor_ids: list[str], metrics: list[str]) -> np.ndarray:
        """int32 profile id per (sensor, metric)."""
        known = self.expected_interval
        if known is None:
            return np.fromiter((self.resolve_params(self._groups(s), m) for s, m in zip(sensor_ids, metrics)),
                               np.int32, len(sensor_ids))
        return np.fromiter((self.resolve_params(self._groups(s), m, known(s, m)) for s, m in zip(sensor_ids, metrics)),
                           np.int32, len(sensor_ids))
