"""Detector configuration (the `detection:` section).

Three layers, later wins: `defaults` (every detector with its parameters), `metrics.<name>` (a
partial override per metric) and `groups` (partial overrides for sensors matching fnmatch
patterns, optionally limited to some metrics, applied in list order). Overrides name only the
fields they change, e.g.::

    detection:
      metrics:
        pm2_5: {threshold: {enabled: true, high: 300, clear_high: 250, severity: critical}}
        rain: {robust_z: {enabled: false}, flatline: {enabled: false}}
      groups:
        - sensors: ["station-*"]
          metrics: [temperature]
          detectors: {silence: {expected_interval_s: 60}}

Every override is validated against the full parameter model when the configuration loads, so a
typo fails at start-up with the field named, not at the first reading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Severity = Literal["info", "warning", "critical"]
DETECTOR_NAMES: tuple[str, ...] = ("threshold", "robust_z", "ewma", "spike", "flatline", "silence")
#: default `fusion.detector_tail_stretch`: 1, the emitted detector tail is the fitted one. 0.8 met det19's
#: figure rule but breaks "every robust_z / ewma decision carries a score >= 1 - alert_tail" (the bound
#: becomes 1 - alert_tail ** stretch) and was picked on all six datasets: not adopted (benchmarks/README.md, det19)
DETECTOR_TAIL_STRETCH = 1.0


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="run this detector")
    severity: Severity = Field("warning", description="severity of the alerts this detector raises")
    weight: float = Field(1.0, ge=0, le=1, description="factor on this detector's score in the fused anomaly_score")


class ThresholdParams(_Params):
    """Static limits with hysteresis: raise above `high` / below `low`, clear once back inside the clear band.

    Giving a limit (`high` or `low`) turns the detector on unless `enabled: false` is written next
    to it: an operator who sets limits means them (before, limits without `enabled: true` were
    silently ignored)."""

    enabled: bool = Field(False, description="off unless limits are configured for a metric or group; giving "
                          "`high` or `low` turns it on (write `enabled: false` beside them to keep it off)")
    high: float | None = Field(None, description="raise when a value is above this; null = no upper limit")
    low: float | None = Field(None, description="raise when a value is below this; null = no lower limit")
    clear_high: float | None = Field(None, description="clear once the value is at or below this (default: high)")
    clear_low: float | None = Field(None, description="clear once the value is at or above this (default: low)")
    severity: Severity = Field("critical", description="severity of the alerts this detector raises")

    @model_validator(mode="before")
    @classmethod
    def _limits_enable(cls, data: Any) -> Any:
        return limits_enable(data)

    @model_validator(mode="after")
    def _bands(self) -> ThresholdParams:
        if self.high is not None and self.clear_high is not None and self.clear_high > self.high:
            raise ValueError("clear_high must be <= high (hysteresis clears below the raise level)")
        if self.low is not None and self.clear_low is not None and self.clear_low < self.low:
            raise ValueError("clear_low must be >= low (hysteresis clears above the raise level)")
        return self


def limits_enable(fields: Any) -> Any:
    """A threshold patch that gives a limit but says nothing about `enabled` enables the detector."""
    if isinstance(fields, dict) and "enabled" not in fields and (
            fields.get("high") is not None or fields.get("low") is not None):
        return {**fields, "enabled": True}
    return fields


class RobustZParams(_Params):
    """|x - rolling median| / (1.4826 MAD) over the last `window` readings."""

    window: int = Field(128, ge=8, le=1024, description="readings in the rolling median/MAD")
    threshold: float = Field(8.0, gt=0, description="decision at this robust z (score 0.5)")
    weight: float = Field(0.5, ge=0, le=1, description="factor on this detector's score in the fused anomaly_score "
                          "(0.5: level changes are also seen by ewma; alone it over-reacts to heavy tails)")
    min_history: int = Field(16, ge=3, description="readings seen before it scores")


class EwmaParams(_Params):
    """|x - EWMA mean| / EWMA std (winsorised updates, so one outlier does not inflate the band)."""

    alpha: float = Field(0.05, gt=0, lt=1, description="EWMA smoothing factor per reading")
    threshold: float = Field(16.0, gt=0, description="decision at this many EWMA standard deviations (score 0.5)")
    min_history: int = Field(16, ge=2, description="readings seen before it scores")
    shift_alpha: float = Field(
        0.1, gt=0, lt=1, description="smoothing of the level-shift statistic: a fast EWMA of the readings, "
        "compared with the rolling median (a sustained move of a few sigma shows within ~1/alpha readings)")
    shift_threshold: float = Field(
        8.0, gt=0, description="level-shift decision at this many typical deviations of the fast EWMA from the "
        "rolling median (that typical deviation is learned per series, so smooth series are not over-flagged); "
        "0.5 score; the ewma score is the larger of the band and the level-shift score")
    shift_memory: int = Field(2048, ge=16, description="readings of memory of the typical deviation")
    envelope_threshold: float = Field(
        0.5, ge=0, description="envelope: decision where the fast level (the shift EWMA) is this many widths of the "
        "series' learned range beyond that range (its highest and lowest fast level, decaying over shift_memory, "
        "growing by at most envelope_growth widths a reading): a sustained level change beyond anything the series "
        "has done; 0 = off")
    envelope_growth: float = Field(
        1.0 / 64.0, gt=0, le=1, description="envelope: the learned range widens by at most this x its width a reading, "
        "so a new level outside it stays outside for a while instead of being learned at once")
    envelope_memory: float = Field(
        8192.0, ge=16, description="envelope: readings for the learned range to decay toward the level (not while "
        "the series idles: no change in spike's window)")
    envelope_min_history: int = Field(512, ge=2, description="envelope: readings seen before it scores")
    reach_threshold: float = Field(
        1.0, ge=0, description="reach (anomaly_score only, never a decision): a single reading this many widths of "
        "the series' own range of readings beyond it (its highest and lowest reading, widening by at most "
        "envelope_growth widths a reading), reached by a jump of as much from inside it, scores 1 - the probability of "
        "such a reading under the series' own history: a capped speed's impossible value, whatever the local scale; "
        "0 = off")
    reach_min_history: int = Field(
        1024, ge=2, description="reach: readings seen before it scores (the range of a short history is narrow, so "
        "a count's or a heavy tail's next record is not yet beyond anything the series does)")
    count_threshold: float = Field(
        12.0, ge=0, description="count rate: on a mostly-zero series (the window's median and minimum at a floor of "
        "0, MAD 0: a sparse count, an idle on/off series, rain), decision where a one-sided CUSUM of the onsets (a "
        "reading above 0 after one at 0) against the series' own long-run onset rate reaches this many nats (false "
        "alarms: at most about e^-this per onset); a count whose rate goes up several-fold, before its median or "
        "range moves; the decision then holds while the rate stays up; scored from envelope_min_history readings "
        "on; 0 = off")
    count_factor: float = Field(
        4.0, gt=1, description="count rate: the CUSUM's alternative, this x the odds of an onset (the change it is "
        "quickest to find; larger changes are found sooner still)")
    spread_floor: float = Field(
        0.5, ge=0, description="the band (and robust_z's scale) is at least this x the series' long-run RMS "
        "deviation from its EWMA (and at least its resolution, the smallest change seen), so a quiet stretch of "
        "a smooth or quantised series does not shrink the scale to nothing; 0 = resolution only")


class SpikeParams(_Params):
    """|x - previous| / robust scale (1.4826 x median |change|) of the last `window` changes."""

    window: int = Field(64, ge=8, le=1024, description="recent changes in the robust scale")
    threshold: float = Field(12.0, gt=0, description="decision at this many robust scales of change (score 0.5)")
    min_history: int = Field(16, ge=3, description="readings seen before it scores")
    spread_floor: float = Field(
        0.8, ge=0, description="the scale is at least this x the long-run RMS step (a change the next reading "
        "kept; zeros included), so the normal switching of an on/off series (rare, large, persistent) and the "
        "natural jumps of a series with heavy-tailed steps (hourly pollution, dew point) are not spikes, while "
        "repeated one-reading spikes (which return) are never learned as normal; on Gaussian steps the RMS step "
        "is about the median-based scale, so this floor changes nothing there; 0 = off")


class FlatlineParams(_Params):
    """A stuck sensor: the value stays within `tolerance` for `min_readings` readings or `min_duration_s`."""

    min_readings: int = Field(12, ge=2, description="decision after this many readings without variation")
    min_duration_s: float | None = Field(None, gt=0, description="or after this long without variation; null = off")
    tolerance: float = Field(0.0, ge=0, description="changes up to this (absolute, in the metric's unit) count as none")
    learn_factor: float = Field(
        2.0, ge=0, description="decision at the larger of min_readings and this x the longest run of equal values "
        "the series shows normally (learned, decaying memory): plateaus of a periodic series, a slow channel "
        "holding its value, are not a stuck sensor; 0 = min_readings only")
    learn_memory: float = Field(20_000.0, ge=1, description="readings for the learned longest run to halve")
    only_if_varying: bool = Field(
        True, description="only flag series that normally vary (non-zero MAD when the run starts), so metrics "
        "that are legitimately constant (rain = 0) do not alert; and not runs at the series' usual floor (within "
        "the lowest 5 % of the recent window, not below its minimum), e.g. so2 resting at a quantised 2 ug/m3")


class SilenceParams(_Params):
    """No reading for `factor` x the expected interval (configured, or learned from the recent gaps: the
    median gap plus `irregularity` x the gaps' spread, q90 - median, where sampling is irregular)."""

    factor: float = Field(3.0, gt=1, description="silent when the gap exceeds this many expected intervals")
    expected_interval_s: float | None = Field(None, gt=0, description="expected gap between readings; null = learn")
    window: int = Field(32, ge=4, le=1024, description="recent gaps in the learned (median) interval")
    irregularity: float = Field(
        4.0, ge=0, le=50, description="how much irregular sampling stretches the learned interval: median gap + "
        "this x the gaps' spread (q90 gap - median gap, learned over many windows of gaps). 0 = the median alone; "
        "4: an event-driven feed (exponential inter-arrivals) is silent after ~21 mean gaps, a gap it produces "
        "about once in 10^9 readings. Regular series, even with a few missed readings: no change")
    min_history: int = Field(32, ge=2, description="readings seen before a learned interval is trusted (enough "
                             "gaps to learn how regular the sampling is)")
    rarity: float = Field(
        1e-4, ge=0, lt=1, description="a learned interval also knows how often the series' gaps are long (at least "
        "`factor` median gaps): a gap is silent only from the length whose chance a gap, under the exponential tail "
        "fitted to the series' own long gaps, is this; so a road sensor or scraper that misses runs of readings now "
        "and then is not silent on each, while a gap far beyond them (a dead source) is. 0 = off (the interval "
        "alone); the configured `expected_interval_s` stays strict")
    rarity_memory: float = Field(20_000.0, ge=1, description="gaps the rarity's counts remember (decay 1 - 1 / this)")
    rarity_prior_gaps: float = Field(200.0, ge=1, description="the rarity's prior: this many gaps, none long")
    rarity_prior_excess: float = Field(
        3.0, gt=0, description="the rarity's prior mean excess of a long gap over `factor`, in median gaps (two "
        "such gaps: a long gap's learned excess is winsorised at 5 x the mean, so one outage teaches little)")
    severity: Severity = Field("critical", description="severity of the alerts this detector raises: missing data "
                              "is what operations must act on first")


class DetectorParams(BaseModel):
    """Parameters of every detector for one (sensor group, metric) profile."""

    model_config = ConfigDict(extra="forbid")

    threshold: ThresholdParams = Field(ThresholdParams(), description="static limits with hysteresis")
    robust_z: RobustZParams = Field(RobustZParams(), description="rolling median / MAD z-score")
    ewma: EwmaParams = Field(EwmaParams(), description="EWMA mean/variance bands")
    spike: SpikeParams = Field(SpikeParams(), description="rate of change vs the robust scale of recent changes")
    flatline: FlatlineParams = Field(FlatlineParams(), description="stuck sensor")
    silence: SilenceParams = Field(SilenceParams(), description="missing data")

    def patched(self, patch: dict[str, dict[str, Any]]) -> DetectorParams:
        """A copy with a partial override applied (validated)."""
        data = self.model_dump()
        for name, fields in patch.items():
            data[name].update(limits_enable(fields) if name == "threshold" else fields)
        return DetectorParams.model_validate(data)


DetectorPatch = dict[Literal["threshold", "robust_z", "ewma", "spike", "flatline", "silence"], dict[str, Any]]


class SensorGroup(BaseModel):
    """Overrides for the sensors matching `sensors` (fnmatch patterns), for `metrics` (empty = all)."""

    model_config = ConfigDict(extra="forbid")

    sensors: list[str] = Field(description="fnmatch patterns on sensor_id, e.g. 'station-*'", min_length=1)
    metrics: list[str] = Field(default_factory=list, description="metrics this group applies to; empty = all")
    detectors: DetectorPatch = Field(default_factory=dict, description="partial detector parameters")


class FusionSettings(BaseModel):
    """How detector scores become the sparse `anomaly_score` (what the backtest writes)."""

    model_config = ConfigDict(extra="forbid")

    rearm_half_life: float = Field(
        100.0, gt=0, description="readings for the memory of the last peak to halve (its tail to double); a new anomaly_score is only "
        "emitted when the raw score beats that decaying peak, so one anomaly gives one high score at its onset")
    rearm_bump: float = Field(
        0.3, ge=0, le=1, description="after an emitted score s the peak memory is set to s + bump x (1 - s): "
        "0 = any higher score is emitted again, 1 = nothing is emitted until the memory has decayed")
    likelihood_weight: float = Field(
        0.9, ge=0, le=1, description="factor on the anomaly-likelihood score in the fused anomaly_score (0 = off). "
        "Numenta-style post-processing of the slot's own raw fused score: a short-term average of it is compared "
        "with the long-run mean/std of that average, so a raw score that is unusually high *for this series* "
        "(sustained small departures, a change of pattern) counts; the fused raw score is the larger of the "
        "weighted detector scores and this. It never changes a detector's decision (live alerts)")
    likelihood_memory: float = Field(
        1000.0, ge=16, description="readings of memory of the long-run mean/std of the short-term average (EWMA; "
        "a plain mean until that many readings have been seen)")
    likelihood_alpha: float = Field(
        0.25, gt=0, le=1, description="EWMA factor of the short-term average of the raw fused score (0.25: ~7 readings)")
    likelihood_threshold: float = Field(
        2.25, gt=0, description="likelihood score 0.5 where the short-term average is this many long-run standard "
        "deviations above its long-run mean (score z / (z + threshold))")
    likelihood_min_history: int = Field(64, ge=2, description="readings seen before the likelihood scores")
    likelihood_shift_threshold: float = Field(
        16.0, ge=0, description="direction-aware level shift in the likelihood's input (0 = off): the distance of "
        "ewma's fast shift EWMA from the rolling median in units of that distance's typical size *on the same side* "
        "(learned separately above and below, same memory as ewma.shift_memory), scored q / (q + this), capped at "
        "0.75; a step in the direction a series rarely moves (a drop of a series that only spikes upwards, a pump "
        "losing pressure) counts. Input only: no detector score or decision changes")
    likelihood_shift_floor: float = Field(
        0.3, gt=0, le=1, description="the one-sided typical size is taken as at least this fraction of the "
        "two-sided one (ewma's level-shift scale), so a side the series has never moved to cannot make any step "
        "extreme")
    likelihood_spread_threshold: float = Field(
        2.0, ge=0, description="change of spread in the likelihood's input (0 = off): the RMS change between "
        "readings over the last ~32 readings against its long-run RMS (2,000 readings), as q = ratio - 1, scored "
        "q / (q + this), capped at 0.75; more noise or a faster period (each reading's change grows while no single "
        "reading is an outlier) counts. Increases only. Input only: no detector score or decision changes")
    likelihood_trend_threshold: float = Field(
        2.0, ge=0, description="trend-aware residual in the likelihood's input (0 = off): each reading against a "
        "local linear prediction (Brown's double exponential smoothing, factor likelihood_trend_alpha, the update "
        "winsorised at 4 long-run RMS residuals), the residual's short-term mean (~16 readings) in units of its own "
        "long-run RMS as z, scored q / (q + this) for q = z - 2, capped at 0.75; a level shift or a change of slope "
        "on a trending or seasonal series, which a level (median, EWMA) lags behind, counts. Input only: no "
        "detector score or decision changes")
    likelihood_trend_alpha: float = Field(
        0.1, gt=0, lt=1, description="smoothing factor of the trend input's local linear prediction (0.1: a level "
        "and slope over the last ~10-20 readings)")
    likelihood_season_threshold: float = Field(
        1.0, ge=0, description="daily-seasonal residual in the likelihood's score (0 = off): each reading against "
        "a slow level plus a profile of the UTC day in 24 hourly bins interpolated between their centres (additive "
        "Holt-Winters, the update winsorised at 4 long-run RMS residuals), the residual's short-term mean (~16 "
        "readings) in units of its own long-run RMS as z, scored q / (q + this) for q = z - 2, capped at 0.95, "
        "from 1.25 days of the series' own time on; the likelihood's score is the larger of this and its own. A "
        "changed day (a halved period, a rate that halves) counts where the trend input's local prediction follows "
        "it and the detectors' windows hold the whole swing. Likelihood only: no detector score or decision "
        "changes")
    likelihood_season_min_amplitude: float = Field(
        8.0, ge=0, description="the seasonal score only where the learned day's range (its profile's highest bin "
        "less its lowest) is at least this many long-run RMS residuals: a series whose day stands well above its "
        "noise (a road, an online rate), not a weather-driven one with a weak daily cycle")
    likelihood_season_level_hours: float = Field(
        6.0, gt=0, description="time constant of the seasonal input's level, in hours of the series' own time")
    likelihood_season_gamma: float = Field(
        0.2, gt=0, le=1, description="how far a pass of the day moves each bin of the seasonal input's profile "
        "toward the residual (after the first day, which sets each bin to its first pass's mean)")
    tail_level: float = Field(
        0.25, gt=0, description="calibrated anomaly_score: the series' fused statistic q (the largest detector "
        "statistic in units of its threshold, x weight; the likelihood's z in units of its threshold, x weight) "
        "counts as a tail exceedance above this; P(Q >= q) above it is an exponential tail fitted to the series' "
        "own exceedances (rate and mean excess), and anomaly_score = 1 - P(Q >= q)")
    tail_memory: float = Field(
        5000.0, ge=16, description="readings of memory of the tail fit (exponentially decaying counts)")
    tail_prior_rate: float = Field(
        0.01, gt=0, lt=1, description="prior share of readings above tail_level, for a series with little history")
    tail_prior_excess: float = Field(
        1.0, gt=0, description="prior mean excess above tail_level (thresholds): with tail_prior_rate the tail of a "
        "series with little history (a statistic at the threshold, q = 1, is P ~ 0.01 x exp(-0.75) ~ 5e-3 then); "
        "and the fixed tail that maps the likelihood's q to its P (the likelihood is already a per-series z)")
    alert_tail: float = Field(
        0.01, gt=0, le=1, description="a detector decides (alerts) where its statistic reaches its threshold *and* the "
        "calibrated score of that statistic (weighted, under the series' fitted tail) is at least 1 - alert_tail: "
        "so every decision has anomaly_score-scale evidence >= 1 - alert_tail, and a series whose statistic often "
        "reaches the threshold (heavy tails) needs a larger one to alert. 1 = the statistic alone. "
        "threshold (operator limits) and silence (live gap checks) are not gated")
    detector_tail_stretch: float = Field(
        DETECTOR_TAIL_STRETCH, gt=0, description="the detectors' emitted anomaly_score: above tail_level, P(Q >= q) = "
        "rate x exp(-stretch x excess / mean excess), so below 1 the emitted tail falls more slowly than the fitted "
        "one and a far detector statistic scores a little lower beside the likelihood's (1 = the fitted tail). Scores "
        "only: which readings carry a score and every decision (always on the fitted tail) are unchanged; but below 1 "
        "a robust_z / ewma decision is only sure to carry a score of 1 - alert_tail ** stretch, not 1 - alert_tail "
        "(benchmarks/README.md, det19: 0.8 measured, not adopted)")
    tail_prior_readings: float = Field(
        200.0, ge=0, description="weight of the prior rate, in readings (the series' own counts take over after that)")
    recalibrate_level: float = Field(
        0.99, ge=0, lt=1, description="second-stage calibration of the emitted anomaly_score (0 = off): in surprise "
        "units y = -ln(1 - score), an exponential tail above y0 = -ln(1 - this) fitted to the series' own emitted "
        "scores (their rate above y0 and mean excess, decayed counts; the prior is the identity map), below y0 a "
        "linear scale; so a series that often emits very high scores has them scaled down, and one threshold is "
        "closer to the same tail of emitted scores on every series. Scores only: which readings carry a score "
        "and every decision are unchanged")
    recalibrate_memory: float = Field(
        20000.0, ge=16, description="readings of memory of the second-stage fit (exponentially decaying counts)")
    recalibrate_prior_readings: float = Field(
        5000.0, gt=0, description="weight of the second stage's prior (the identity map: rate 1 - recalibrate_level "
        "above the level, mean excess 1), in readings; weaker priors over-fit short series (benchmarks/README.md, det16b)")


class DetectionSettings(BaseModel):
    """Which detectors run, with what parameters, per metric and sensor group."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="run detectors on ingested readings")
    defaults: DetectorParams = Field(DetectorParams(), description="parameters for every series")
    metrics: dict[str, DetectorPatch] = Field(default_factory=dict, description="partial overrides per metric")
    groups: list[SensorGroup] = Field(default_factory=list, description="partial overrides per sensor group")
    fusion: FusionSettings = Field(FusionSettings(), description="the fused anomaly_score")
    warm_readings: int = Field(128, ge=0, le=100_000,
                               description="stored readings replayed into a series' detectors when it becomes active")
    score_log: Path | None = Field(None, description="append every live score to this CSV (shadow mode); null = off")

    @model_validator(mode="after")
    def _validate_patches(self) -> DetectionSettings:
        for metric, patch in self.metrics.items():
            try:
                self.defaults.patched(patch)
            except ValueError as exc:
                raise ValueError(f"metrics.{metric}: {exc}") from None
        for i, group in enumerate(self.groups):
            try:
                self.defaults.patched(group.detectors)
            except ValueError as exc:
                raise ValueError(f"groups[{i}]: {exc}") from None
        return self
