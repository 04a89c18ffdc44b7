"""robust_z's and ewma's decisions are consistent with the calibrated anomaly score (issue 11 item 3).

Their statistic at its threshold decides only where its weighted score is rare for the series
under the series' own fitted tail (`fusion.alert_tail`): a heavy-tailed series whose statistic
often reaches the threshold needs a larger one to alert, and every such decision carries
calibrated evidence of at least 1 - alert_tail, the scale the anomaly_score is on. spike,
flatline, silence and threshold decide on their statistic alone (a repeated spike is never
learned away)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st

from detect_series import score_one
from urbanpulse.detect import DetectionSettings

GATED = ("robust_z", "ewma")


def _score(x: np.ndarray, **fusion):
    return score_one(x, settings=DetectionSettings.model_validate({"fusion": fusion}))


def _series(kind: str, seed: int, n: int = 1500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "gauss":
        return 10 + rng.normal(0, 1, n)
    if kind == "heavy":  # Student t, df 1.5: the statistic reaches the threshold often
        return 10 + rng.standard_t(1.5, n)
    if kind == "steps":  # a random walk of rare jumps over small noise
        return np.cumsum(rng.normal(0, 1, n) * (rng.random(n) < 0.02) * 20) + rng.normal(0, 0.2, n)
    return np.round(rng.gamma(0.3, 2.0, n) * (rng.random(n) < 0.2), 1)  # mostly zero, bursty


@given(st.sampled_from(["gauss", "heavy", "steps", "bursty"]), st.integers(0, 10_000),
       st.sampled_from([0.001, 0.003, 0.01, 0.03]), st.sampled_from([0.0, 0.9]))
@hsettings(max_examples=25, deadline=None)
def test_decisions_need_the_statistic_and_shrink_with_alert_tail(kind: str, seed: int, alert_tail: float,
                                                                  li_w: float) -> None:
    x = _series(kind, seed)
    x[700] += 40.0  # one outlier somewhere, so some decision is likely
    gated = _score(x, alert_tail=alert_tail, likelihood_weight=li_w)
    off = _score(x, alert_tail=1.0, likelihood_weight=li_w)
    # the scores and the anomaly_score do not depend on the gate; decisions only get fewer
    assert np.array_equal(gated.score, off.score)
    assert np.array_equal(gated.anomaly_score, off.anomaly_score)
    assert np.array_equal(off.decision, off.score >= 0.5)
    assert not (gated.decision & ~off.decision).any()
    tighter = _score(x, alert_tail=alert_tail / 3, likelihood_weight=li_w)
    assert not (tighter.decision & ~gated.decision).any()
    # threshold and silence are never gated; here: silence is not in play, so only gated detectors differ
    # and with the likelihood off, an emitted score on a deciding reading is at least 1 - alert_tail
    if li_w == 0.0:
        cols = [gated.names.index(n) for n in GATED if n in gated.names]
        dec = gated.decision[:, cols].any(axis=1)
        emitted = dec & (gated.anomaly_score > 0)
        assert (gated.anomaly_score[emitted] >= 1.0 - alert_tail).all()


def test_repeated_spikes_are_not_learned_away() -> None:
    x = _series("gauss", 3, 2000)
    spikes = list(range(500, 2000, 60))
    x[spikes] += 25.0
    sc = _score(x)
    assert sc.decision[spikes, sc.names.index("spike")].all()


def test_a_heavy_tailed_series_raises_fewer_alerts_and_a_clear_outlier_still_alerts() -> None:
    heavy = _series("heavy", 7, 4000)
    off = _score(heavy, alert_tail=1.0)
    on = _score(heavy)
    onsets = lambda sc: int((sc.alert & ~np.r_[False, sc.alert[:-1]]).sum())  # noqa: E731
    assert onsets(on) < onsets(off)
    clean = _series("gauss", 8, 3000)
    assert onsets(_score(clean)) == 0
    clean[2000] += 30.0  # 30 sigma: rare for any Gaussian series
    sc = _score(clean)
    assert sc.alert[2000]
    assert sc.anomaly_score[2000] >= 0.99
