"""DetectorBank: each detector on synthetic and real data, batch-split invariance, config resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from urbanpulse.config import load_settings
from urbanpulse.datasets import DatasetNotFoundError
from urbanpulse.datasets.beijing import read_station, station_files
from urbanpulse.detect import DetectionSettings, DetectorBank
from urbanpulse.detect.profiles import COL
from detect_reference import ReferenceBank
from urbanpulse.errors import ConfigError

SAMPLE = Path(__file__).resolve().parents[1] / "src/urbanpulse/datasets/sample/PRSA_Data_Dongsi_20130301-20170228.csv.gz"
HOUR_US = 3_600_000_000
MIN_US = 60_000_000


def _bank(settings: DetectionSettings | None = None, n: int = 1, sensors: list[str] | None = None,
          metrics: list[str] | None = None) -> DetectorBank:
    bank = DetectorBank(settings or DetectionSettings())
    bank.assign(np.arange(n), sensors or [f"s{i}" for i in range(n)], metrics or ["pm2_5"] * n)
    return bank


def _noise(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.arange(n, dtype=np.int64) * MIN_US + 1_700_000_000_000_000, 20 + rng.normal(0, 1, n)


def _fired(scores, name: str) -> np.ndarray:
    return np.flatnonzero(scores.decision[:, scores.names.index(name)])


@pytest.fixture(scope="module")
def dongsi_temperature() -> tuple[np.ndarray, np.ndarray]:
    """2,000 hours of a real station's temperature (no missing values in this stretch)."""
    d = read_station(SAMPLE)
    ts = d.ts_ms[:2000].astype(np.int64) * 1000
    x = d.values["temperature"][:2000].copy()
    assert np.isfinite(x).all()
    return ts, x


# -- each detector -------------------------------------------------------------------------------

def test_injected_spike_fires_the_spike_detector_once_not_on_the_return() -> None:
    ts, x = _noise(600)
    x[400] += 30
    sc = _bank().score(np.zeros(600, np.int64), ts, x)
    assert _fired(sc, "spike").tolist() == [400]
    assert _fired(sc, "robust_z").tolist() == [400]
    assert sc.anomaly_score.argmax() == 400


def test_level_shift_raises_robust_z_and_ewma() -> None:
    ts, x = _noise(600)
    x[400:] += 25
    sc = _bank().score(np.zeros(600, np.int64), ts, x)
    assert 400 in _fired(sc, "robust_z") and 400 in _fired(sc, "ewma")
    assert sc.anomaly_score.argmax() == 400


def test_flatline_by_readings_and_by_time() -> None:
    ts, x = _noise(600)
    x[300:340] = x[300]
    sc = _bank().score(np.zeros(600, np.int64), ts, x)
    fired = _fired(sc, "flatline")
    assert fired.min() == 300 + 12 - 1 and fired.max() == 339  # min_readings = 12 (run incl. first)
    settings = DetectionSettings(defaults={"flatline": {"min_readings": 1000, "min_duration_s": 600}})
    sc = _bank(settings).score(np.zeros(600, np.int64), ts, x)
    assert _fired(sc, "flatline").min() == 310  # 10 minutes at one reading a minute


def test_flatline_ignores_series_that_never_vary() -> None:
    ts, _ = _noise(300)
    sc = _bank().score(np.zeros(300, np.int64), ts, np.zeros(300))  # rain: 0 for days
    assert not sc.decision.any()


def test_silence_scores_the_first_reading_after_a_gap_and_check_silence_sees_it_live() -> None:
    ts, x = _noise(300)
    ts[200:] += 10 * MIN_US  # 11-minute gap at a learned 1-minute interval
    bank = _bank()
    sc = bank.score(np.zeros(300, np.int64), ts, x)
    assert _fired(sc, "silence").tolist() == [200]
    last = int(ts[-1])
    assert len(bank.check_silence(np.array([0]), np.array([last + 2 * MIN_US]), 0)) == 0
    sil = bank.check_silence(np.array([0]), np.array([last + 5 * MIN_US]), 0)
    assert sil.slot.tolist() == [0] and sil.gap_us.tolist() == [5 * MIN_US] and 0.5 <= sil.score[0] <= 1
    sil = bank.check_silence(np.array([0]), np.array([-1]), last + 5 * MIN_US)  # no watermark: wall clock
    assert sil.slot.tolist() == [0]


def test_silence_with_a_configured_interval() -> None:
    settings = DetectionSettings(defaults={"silence": {"expected_interval_s": 600, "factor": 2}})
    ts, x = _noise(100)
    ts[50:] += 15 * MIN_US  # 16 min < 2 x 10 min
    ts[80:] += 30 * MIN_US  # 31 min > 20 min
    sc = _bank(settings).score(np.zeros(100, np.int64), ts, x)
    assert _fired(sc, "silence").tolist() == [80]


def test_threshold_hysteresis_raises_above_high_and_clears_below_clear_high() -> None:
    settings = DetectionSettings(metrics={"pm2_5": {"threshold": {"enabled": True, "high": 100, "clear_high": 80}}})
    x = np.array([50, 90, 101, 95, 85, 81, 79, 90, 120, 70.0])
    ts = np.arange(len(x), dtype=np.int64) * MIN_US
    bank = _bank(settings)
    assert "threshold" in bank.names
    sc = bank.score(np.zeros(len(x), np.int64), ts, x)
    assert _fired(sc, "threshold").tolist() == [2, 3, 4, 5, 8]
    assert bank.severity(0, "threshold") == "critical"


def test_threshold_is_off_unless_configured() -> None:
    assert "threshold" not in DetectorBank(DetectionSettings()).names


# -- real data --------------------------------------------------------------------------------

def test_direction_aware_shift_is_a_likelihood_input_only(dongsi_temperature) -> None:
    """fusion.likelihood_shift_threshold feeds the likelihood only: detector scores and decisions are the same
    with it off, the fused score stays in [0, 1], and it does change the fused score somewhere."""
    ts, x = dongsi_temperature
    out = {}
    for thr in (16.0, 0.0):
        bank = _bank(DetectionSettings(fusion={"likelihood_shift_threshold": thr}), metrics=["temperature"],
                     sensors=["beijing-dongsi"])
        out[thr] = bank.score(np.zeros(len(x), np.int64), ts, x)
    on, off = out[16.0], out[0.0]
    assert np.array_equal(on.score, off.score) and np.array_equal(on.decision, off.decision)
    assert on.anomaly_score.min() >= 0 and on.anomaly_score.max() <= 1
    assert not np.array_equal(on.anomaly_score, off.anomaly_score)


def test_real_station_with_injected_spike_flatline_and_six_hour_gap(dongsi_temperature) -> None:
    ts, x = dongsi_temperature
    x = x.copy()
    x[700] += 15.0
    x[1000:1030] = x[1000]
    keep = np.ones(len(x), bool)
    keep[1400:1406] = False  # 6 hours missing: the reading at 1406 comes after the gap
    ts, x = ts[keep], x[keep]
    sc = _bank(metrics=["temperature"], sensors=["beijing-dongsi"]).score(np.zeros(len(x), np.int64), ts, x)
    assert _fired(sc, "spike").tolist() == [700]
    flat = _fired(sc, "flatline")
    assert flat.min() == 1011 and flat.max() == 1029 and len(flat) == 19  # one contiguous run
    assert _fired(sc, "silence").tolist() == [1400]  # row 1400 of the kept rows = hour 1406
    # each injected fault shows in the fused score, above anything the clean stretch before it scored
    high = sc.anomaly_score[:700].max()
    # (the spike only at its decision level: since the likelihood's re-arm gate works in tail space, one
    # natural swing before it emits a likelihood of 0.53, above the spike's 0.506)
    assert sc.anomaly_score[1400] > high and sc.anomaly_score[1011:1030].max() > high and sc.anomaly_score[700] >= 0.5, \
        (sc.anomaly_score[700], sc.anomaly_score[1400], sc.anomaly_score[1011:1030].max(), high)


# -- contract ---------------------------------------------------------------------------------

def _interleaved(n_series: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    slots = np.repeat(np.arange(n_series), n)
    ts = np.tile(np.arange(n, dtype=np.int64) * MIN_US, n_series) + rng.integers(0, 1000, n * n_series)
    ts = np.sort(ts.reshape(n_series, n), axis=1).ravel()
    x = rng.standard_t(3, n * n_series) + 5 * (rng.random(n * n_series) < 0.01)
    x[slots == 1] = np.round(x[slots == 1])  # quantised, with repeats
    ts[rng.random(n * n_series) < 0.005] += 30 * MIN_US  # some readings late (out of order): skipped
    order = np.argsort(ts, kind="stable")  # arrival order: series interleaved by time
    return slots[order], ts[order], x[order]


def test_scores_are_independent_of_how_the_stream_is_cut_into_batches() -> None:
    slots, ts, x = _interleaved(5, 800, seed=1)
    whole = _bank(n=5).score(slots, ts, x)
    rng = np.random.default_rng(7)
    for _ in range(3):
        bank = _bank(n=5)
        bank.warm(slots[:0], ts[:0], x[:0])
        parts, i = [], 0
        while i < len(x):
            k = int(rng.integers(1, 300))
            part = bank.score(slots[i:i + k], ts[i:i + k], x[i:i + k])
            part.index += i
            parts.append(part)
            i += k
        got = {f: np.concatenate([getattr(p, f) for p in parts]) for f in
               ("index", "score", "decision", "anomaly_score", "alert")}
        order = np.argsort(got["index"])
        ref = np.argsort(whole.index)
        assert np.array_equal(got["index"][order], whole.index[ref])
        for f in ("score", "decision", "anomaly_score", "alert"):
            assert np.array_equal(got[f][order], getattr(whole, f)[ref]), f  # bit-identical


def test_warm_then_score_equals_scoring_everything() -> None:
    slots, ts, x = _interleaved(3, 400, seed=2)
    whole = _bank(n=3).score(slots, ts, x)
    bank = _bank(n=3)
    bank.warm(slots[:600], ts[:600], x[:600])
    rest = bank.score(slots[600:], ts[600:], x[600:])
    tail = whole.index >= 600
    assert np.array_equal(rest.anomaly_score, whole.anomaly_score[tail])
    assert np.array_equal(rest.score, whole.score[tail])


def test_scores_in_unit_interval_and_alert_is_any_decision() -> None:
    slots, ts, x = _interleaved(4, 500, seed=3)
    sc = _bank(n=4).score(slots, ts, x)
    assert sc.score.min() >= 0 and sc.score.max() <= 1
    assert sc.anomaly_score.min() >= 0 and sc.anomaly_score.max() <= 1
    assert np.array_equal(sc.alert, sc.decision.any(axis=1))
    assert not (sc.decision & (sc.score < 0.5)).any()  # a decision needs the statistic at its threshold
    # with the calibrated gate off (fusion.alert_tail 1) the decision is the statistic alone
    off = DetectionSettings.model_validate({"fusion": {"alert_tail": 1.0}})
    sc1 = _bank(off, n=4).score(slots, ts, x)
    assert np.array_equal(sc1.decision, sc1.score >= 0.5)


def test_duplicates_out_of_order_and_non_finite_readings_are_skipped() -> None:
    bank = _bank()
    sc = bank.score(np.zeros(3, np.int64), np.array([10, 20, 30]), np.array([1.0, 2.0, 3.0]))
    assert sc.index.tolist() == [0, 1, 2]
    sc = bank.score(np.zeros(5, np.int64), np.array([30, 25, 40, 40, 50]), np.array([9.0, 9, 4, 5, np.nan]))
    assert sc.index.tolist() == [2] and sc.ts_us.tolist() == [40] and sc.value.tolist() == [4.0]
    sc = bank.score(np.zeros(2, np.int64), np.array([70, 60]), np.array([7.0, 6.0]))  # any order in
    assert sc.index.tolist() == [1, 0] and sc.ts_us.tolist() == [60, 70]


def test_evict_and_assign_reset_a_slot() -> None:
    ts, x = _noise(300)
    fresh = _bank().score(np.zeros(300, np.int64), ts, x)
    bank = _bank(n=2)
    bank.score(np.zeros(200, np.int64), ts[:200] - 10**12, x[:200] * 7)
    bank.evict(np.array([0]))
    bank.assign(np.array([0]), ["s0"], ["pm2_5"])
    again = bank.score(np.zeros(300, np.int64), ts, x)
    assert np.array_equal(again.score, fresh.score) and np.array_equal(again.anomaly_score, fresh.anomaly_score)


def test_capacity_grows_by_doubling_and_keeps_state() -> None:
    bank = _bank(n=2)
    ts, x = _noise(50)
    bank.score(np.zeros(50, np.int64), ts, x)
    before = bank.state[0].copy()
    bank.ensure_capacity(40)
    assert bank.capacity >= 40 and np.array_equal(bank.state[0], before, equal_nan=True)
    assert bank.nbytes_per_slot() > 0


def test_anomaly_score_is_sparse_after_an_onset() -> None:
    ts, x = _noise(800)
    x[500:560] += 20  # a long anomaly: a high fused score at its onset, not a plateau
    sc = _bank().score(np.zeros(800, np.int64), ts, x)
    high = np.flatnonzero(sc.anomaly_score > sc.anomaly_score[:500].max())  # above anything the clean part scored
    assert high[0] == 500 and len(high) <= 2 and high.max() < 560, high


# -- configuration ----------------------------------------------------------------------------

def test_per_metric_and_group_overrides_resolve_per_slot() -> None:
    settings = DetectionSettings(
        metrics={"pm2_5": {"spike": {"threshold": 30, "severity": "info"}}},
        groups=[{"sensors": ["station-*"], "metrics": ["pm2_5"], "detectors": {"spike": {"threshold": 5}}},
                {"sensors": ["*-north"], "detectors": {"silence": {"enabled": False, "severity": "critical"}}}])
    bank = DetectorBank(settings)
    bank.assign(np.arange(4), ["station-1", "lamp-7", "station-north", "lamp-north"], ["pm2_5", "pm2_5", "no2", "no2"])
    p = bank.profiles
    thr = p.table[bank.profile[:4], COL["sp_threshold"]]
    assert thr.tolist() == [5.0, 30.0, 12.0, 12.0]
    assert bank.severity(0, "spike") == "info" and bank.severity(2, "spike") == "warning"
    on_sil = p.table[bank.profile[:4], COL["on_silence"]]
    assert on_sil.tolist() == [1.0, 1.0, 0.0, 0.0]
    n_profiles = len(p.params)
    bank.assign(np.arange(4, 8), ["station-2", "station-3", "lamp-8", "lamp-9"], ["pm2_5"] * 4)
    assert len(p.params) == n_profiles  # profiles are cached per (groups, metric) and shared by slots
    assert bank.profile[4:8].tolist() == [bank.profile[0]] * 2 + [bank.profile[1]] * 2


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detection:\n  metrics:\n    pm2_5:\n      spike: {treshold: 3}\n")
    with pytest.raises(ConfigError, match="pm2_5"):
        load_settings(cfg)
    cfg.write_text("detection:\n  defaults:\n    threshold: {high: 10, clear_high: 20}\n")
    with pytest.raises(ConfigError, match="clear_high"):
        load_settings(cfg)
    cfg.write_text("detection:\n  groups:\n    - {sensors: ['a*'], detectors: {nope: {}}}\n")
    with pytest.raises(ConfigError):
        load_settings(cfg)


# -- zero-inflated series and floors (Beijing replay: rain, so2/o3 at a quantised floor) ---------

def test_rain_like_zero_inflated_series_raises_no_robust_z_ewma_or_spike_alert() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    ts = np.arange(n, dtype=np.int64) * HOUR_US
    x = np.zeros(n)
    for start in rng.choice(n - 10, 40, replace=False):  # showers: a few hours of rain after dry spells
        x[start:start + rng.integers(1, 6)] = np.round(rng.gamma(1.0, 2.0, 1), 1) + 0.1
    sc = _bank(metrics=["rain"]).score(np.zeros(n, np.int64), ts, x)
    for name in ("robust_z", "ewma"):
        assert len(_fired(sc, name)) == 0, name
    assert len(_fired(sc, "spike")) <= 3  # only showers right after other showers have a scale of change


def test_flatline_at_the_usual_floor_does_not_fire_but_a_mid_range_stuck_value_does() -> None:
    rng = np.random.default_rng(6)
    n = 1500
    ts = np.arange(n, dtype=np.int64) * HOUR_US
    x = np.maximum(2.0, np.round(np.exp(rng.normal(1.5, 0.8, n))))  # so2-like: quantised, floor 2
    x[600:640] = 2.0  # 40 hours at the floor: where it normally rests
    x[1000:1041] = 9.0  # 41 hours stuck at a mid-range value: a fault
    sc = _bank(metrics=["so2"]).score(np.zeros(n, np.int64), ts, x)
    fired = _fired(sc, "flatline")
    assert not ((fired >= 600) & (fired < 640)).any()
    assert ((fired >= 1000) & (fired < 1041)).any()
    below = x.copy()
    below[600:640] = 0.0  # stuck below anything seen recently (dead sensor): still a fault
    sc = _bank(metrics=["so2"]).score(np.zeros(n, np.int64), ts, below)
    assert ((_fired(sc, "flatline") >= 600) & (_fired(sc, "flatline") < 640)).any()


def test_pollution_spike_from_the_floor_still_fires() -> None:
    rng = np.random.default_rng(7)
    n = 800
    ts = np.arange(n, dtype=np.int64) * HOUR_US
    x = np.maximum(2.0, np.round(np.exp(rng.normal(1.5, 0.8, n))))
    x[500] = 150.0
    sc = _bank(metrics=["so2"]).score(np.zeros(n, np.int64), ts, x)
    assert 500 in _fired(sc, "spike") and 500 in _fired(sc, "robust_z")
    assert sc.anomaly_score.argmax() == 500


def test_sustained_small_level_shift_fires_the_ewma_shift_score() -> None:
    rng = np.random.default_rng(8)
    n = 1500
    ts = np.arange(n, dtype=np.int64) * MIN_US
    x = 20 + rng.normal(0, 1, n)
    x[1200:] += 4.0  # 4 sigma: no single reading is extreme, the level is
    sc = _bank().score(np.zeros(n, np.int64), ts, x)
    fired = _fired(sc, "ewma")
    assert len(fired[fired < 1200]) == 0
    assert ((fired >= 1200) & (fired < 1215)).any()  # within a few readings of the onset
    assert sc.anomaly_score[1200:1215].max() > sc.anomaly_score[600:1200].max()


def test_anomaly_likelihood_only_changes_the_fused_score_never_a_decision() -> None:
    slots, ts, x = _interleaved(4, 1500, seed=11)
    # (the first stage: with the second-stage calibration on, the likelihood's emissions are part of the
    # series' emitted tail, so they can scale later scores; test_detect_recalibrate.py covers that stage)
    first = {"recalibrate_level": 0.0}
    off = _bank(DetectionSettings(fusion={"likelihood_weight": 0.0, **first}), n=4).score(slots, ts, x)
    on = _bank(DetectionSettings(fusion=first), n=4).score(slots, ts, x)
    assert np.array_equal(off.score, on.score) and np.array_equal(off.decision, on.decision)
    assert ((on.anomaly_score >= 0) & (on.anomaly_score <= 1)).all()
    # the likelihood adds onsets of its own (sparse: gated by its own decaying peak) ...
    extra = (on.anomaly_score > 0) & (off.anomaly_score == 0)
    assert 0 < extra.sum() < 0.05 * len(on)
    # ... and never removes or lowers a detector onset
    assert (on.anomaly_score >= off.anomaly_score).all()


# -- the numba kernel against its interpreted source (bit-identical) ----------------------------------

def _assert_same_scores(got, ref) -> None:
    for f in ("index", "slot", "ts_us", "value", "decision", "alert"):
        assert np.array_equal(getattr(got, f), getattr(ref, f)), f
    for f in ("score", "anomaly_score"):
        assert np.array_equal(getattr(got, f), getattr(ref, f), equal_nan=True), f
    assert got.names == ref.names


def _assert_same_state(bank, ref) -> None:
    for f in ("state", "values", "changes", "gaps", "last_ts", "profile"):
        a, b = getattr(bank, f), getattr(ref, f)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), f


def _run_both(settings: DetectionSettings, sensors: list[str], metrics: list[str], slots: np.ndarray,
              ts: np.ndarray, x: np.ndarray, seed: int, max_chunk: int) -> tuple[DetectorBank, ReferenceBank]:
    """Feed the same stream, in the same random chunks (the first one as warm-up), to both banks."""
    bank, ref = DetectorBank(settings), ReferenceBank(settings)
    for b in (bank, ref):
        b.assign(np.arange(len(sensors)), sensors, metrics)
    rng = np.random.default_rng(seed)
    i, n_scored = 0, 0
    while i < len(x):
        k = int(rng.integers(1, max_chunk))
        part = slice(i, i + k)
        if i == 0:
            bank.warm(slots[part], ts[part], x[part])
            ref.warm(slots[part], ts[part], x[part])
        else:
            got, want = bank.score(slots[part], ts[part], x[part]), ref.score(slots[part], ts[part], x[part])
            _assert_same_scores(got, want)
            n_scored += len(got)
        i += k
    _assert_same_state(bank, ref)
    assert n_scored > 0.5 * len(x)
    return bank, ref


def test_kernel_matches_numpy_reference_on_a_real_beijing_station() -> None:
    try:
        path = station_files()[0]
    except DatasetNotFoundError:
        path = SAMPLE  # the bundled station (same format) when the full dataset is not installed
    data = read_station(path)
    n = 3_000  # 125 days of hourly readings, all 11 metrics (NaNs where the station has gaps)
    metrics = data.metrics
    slots = np.repeat(np.arange(len(metrics)), n)
    ts = np.tile(data.ts_ms[:n].astype(np.int64) * 1000, len(metrics))
    x = np.concatenate([data.values[m][:n] for m in metrics]).astype(np.float64)
    assert np.isnan(x).any()
    order = np.argsort(ts, kind="stable")  # arrival order: the metrics of an hour together
    settings = DetectionSettings(metrics={"pm2_5": {"threshold": {"enabled": True, "high": 250, "clear_high": 200}},
                                          "rain": {"robust_z": {"enabled": False}}})
    _run_both(settings, [data.station] * len(metrics), metrics, slots[order], ts[order], x[order],
              seed=3, max_chunk=3000)


def test_kernel_matches_numpy_reference_on_synthetic_edge_cases() -> None:
    rng = np.random.default_rng(21)
    n = 2500
    base = np.arange(n, dtype=np.int64) * MIN_US + 1_700_000_000_000_000
    series = []
    x = 20 + rng.normal(0, 1, n)  # noise with a spike, a flatline, a gap, a level shift
    x[700] += 40
    x[1000:1040] = x[1000]
    x[1600:] += 6
    t = base.copy()
    t[1300:] += 45 * MIN_US
    series.append(("station-1", "pm2_5", t, x))
    rain = np.zeros(n)  # zero-inflated, with NaNs
    for s in rng.choice(n - 10, 60, replace=False):
        rain[s:s + rng.integers(1, 6)] = np.round(rng.gamma(1.0, 2.0), 1) + 0.1
    rain[rng.random(n) < 0.02] = np.nan
    series.append(("station-1", "rain", base.copy(), rain))
    so2 = np.maximum(2.0, np.round(np.exp(rng.normal(1.5, 0.8, n))))  # quantised floor, stuck stretches
    so2[900:950] = 2.0
    so2[1500:1545] = 9.0
    so2[rng.random(n) < 0.01] = np.inf
    series.append(("lamp-north", "so2", base + rng.integers(0, 30 * MIN_US, n).cumsum() // 20, so2))
    temp = 10 + 5 * np.sin(np.arange(n) / 60) + rng.standard_t(3, n)  # heavy tails, irregular gaps
    tt = base + np.cumsum(rng.choice([1, 1, 1, 2, 7], n)) * MIN_US
    temp[rng.random(n) < 0.03] = np.nan
    series.append(("station-7", "temperature", tt, temp))
    flat = np.round(rng.normal(0, 0.3, n), 1)  # quantised, many repeats and exact zeros
    series.append(("lamp-8", "no2", base.copy(), flat))
    thr = 50 + 30 * np.sin(np.arange(n) / 40) + rng.normal(0, 3, n)  # crosses the threshold band
    series.append(("station-9", "pm2_5", base.copy(), thr))
    sensors, metrics = [s[0] for s in series], [s[1] for s in series]
    slots = np.concatenate([np.full(n, i, np.int64) for i in range(len(series))])
    ts = np.concatenate([s[2] for s in series])
    x = np.concatenate([s[3] for s in series])
    late = rng.random(len(x)) < 0.01
    ts[late] -= 3 * MIN_US  # out of order, some duplicate timestamps: skipped the same way
    order = np.argsort(ts + rng.integers(0, MIN_US, len(ts)), kind="stable")
    settings = DetectionSettings(
        metrics={"pm2_5": {"threshold": {"enabled": True, "high": 70, "clear_high": 60, "low": 25}},
                 "rain": {"robust_z": {"enabled": False}, "flatline": {"enabled": False}},
                 "temperature": {"robust_z": {"window": 48, "threshold": 5}, "spike": {"window": 24},
                                 "flatline": {"min_duration_s": 600, "tolerance": 0.05}},
                 "no2": {"silence": {"window": 12, "factor": 2}, "flatline": {"only_if_varying": False}}},
        groups=[{"sensors": ["lamp-*"], "detectors": {"silence": {"expected_interval_s": 90},
                                                     "ewma": {"alpha": 0.2, "shift_memory": 64}}},
                {"sensors": ["station-1"], "metrics": ["pm2_5"], "detectors": {"spike": {"threshold": 6}}}],
        fusion={"rearm_half_life": 50, "likelihood_memory": 200})
    bank, ref = _run_both(settings, sensors, metrics, slots[order], ts[order], x[order], seed=5, max_chunk=700)
    assert len(set(bank.profile[:len(series)].tolist())) == len(series)
    last = int(ts.max())
    all_slots = np.arange(len(series))
    for now in (last, last + 4 * MIN_US, last + 30 * MIN_US):
        ev = np.where(all_slots % 2 == 0, now, -1)
        got, want = bank.check_silence(all_slots, ev, now + MIN_US), ref.check_silence(all_slots, ev, now + MIN_US)
        for f in ("slot", "last_ts_us", "gap_us", "score"):
            assert np.array_equal(getattr(got, f), getattr(want, f)), f
    # evicted and reassigned slots start over identically
    for b in (bank, ref):
        b.evict(np.array([1, 3]))
        b.assign(np.array([3]), ["lamp-9"], ["so2"])
    sub = np.isin(slots, [0, 3])
    s2, t2, x2 = slots[sub], ts[sub] + 10**12, x[sub]
    _assert_same_scores(bank.score(s2, t2, x2), ref.score(s2, t2, x2))
    _assert_same_state(bank, ref)
