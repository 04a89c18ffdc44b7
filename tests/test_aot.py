"""Kernels compiled ahead of time (urbanpulse/aot.py): the service's kernels load without Numba,
compute what Numba's JIT computes bit for bit, refuse arguments of other types instead of reading
them out of bounds, and a failed build falls back to the JIT.

(The session's conftest builds them up front through compile_kernels; the detectors' and windows'
own tests then compare the kernels their owners call, these builds, with references.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbanpulse import aot
from urbanpulse.detect import DetectionSettings, DetectorBank
from urbanpulse.detect import _kernel as detect_jit
from urbanpulse.detect import bank as detect_bank
from urbanpulse.detect.bank import EAGER_REFRESH, REFRESH_EVERY
from urbanpulse.detect.settings import DETECTOR_NAMES
from urbanpulse.windows import _kernel as windows_jit
from urbanpulse.windows import state as window_state
from urbanpulse.windows.settings import WindowSettings
from urbanpulse.windows.state import WindowState

SRC = Path(aot.__file__).resolve().parents[1]
MIN_US = 60_000_000
T0 = 1_700_000_000_000_000


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(SRC), **env))


def test_the_service_kernels_load_without_numba() -> None:
    out = _python("import sys\nfrom urbanpulse.analytics import compile_kernels\nfrom urbanpulse import aot\n"
                  "compile_kernels()\nprint(aot.using_aot(), 'numba' in sys.modules, 'llvmlite' in sys.modules)")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "False", "False"], out.stderr[-2000:]


class JitBank(DetectorBank):
    """The bank with Numba's JIT-compiled kernel instead of the ahead-of-time build."""

    def _process(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        built = detect_bank._kernel()
        detect_bank._KERNEL = detect_jit
        try:
            return super()._process(*args, **kwargs)
        finally:
            detect_bank._KERNEL = built


def _mixed(rng: np.random.Generator, n_series: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise, quantised counts, on/off bursts, a large-valued counter; gaps, NaNs, late readings."""
    kind = np.arange(n_series) % 4
    v = np.empty((n_series, n))
    for s in range(n_series):
        v[s] = (20 + rng.normal(0, 1, n), rng.poisson(0.3, n).astype(float),
                np.where(rng.random(n) < 0.1, 50.0, 0.0), 1.2e6 + 0.1 * np.cumsum(rng.integers(0, 3, n)))[kind[s]]
    v[rng.random(v.shape) < 0.01] = np.nan
    v[rng.random(v.shape) < 0.005] += 1e3
    t = T0 + np.cumsum(rng.choice([1, 1, 1, 2, 9], (n_series, n)), axis=1) * MIN_US
    t[rng.random(t.shape) < 0.01] -= 3 * MIN_US
    slot = np.repeat(np.arange(n_series), n)
    order = np.argsort(t.reshape(-1), kind="stable")
    return slot[order], t.reshape(-1)[order], v.reshape(-1)[order]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), n_series=st.integers(1, 24), n=st.integers(20, 400), chunk=st.integers(1, 2000))
def test_the_detect_kernel_built_ahead_of_time_equals_the_jit_bit_for_bit(seed: int, n_series: int, n: int,
                                                                         chunk: int) -> None:
    rng = np.random.default_rng(seed)
    slot, ts, x = _mixed(rng, n_series, n)
    settings_ = DetectionSettings(metrics={"m1": {"threshold": {"enabled": True, "high": 30, "clear_high": 25}}})
    banks = [DetectorBank(settings_), JitBank(settings_)]
    assert detect_bank._kernel().__name__.startswith("_upk_detect_")  # the bank calls the build
    for b in banks:
        b.assign(np.arange(n_series), [f"s{i}" for i in range(n_series)], [f"m{i % 3}" for i in range(n_series)])
    for i in range(0, len(x), chunk):
        got, want = (b.score(slot[i:i + chunk], ts[i:i + chunk], x[i:i + chunk]) for b in banks)
        for f in ("index", "slot", "ts_us", "value", "decision", "alert"):
            assert np.array_equal(getattr(got, f), getattr(want, f)), f
        for f in ("score", "anomaly_score"):
            assert np.array_equal(getattr(got, f), getattr(want, f), equal_nan=True), f
    for f in ("state", "values", "changes", "gaps", "last_ts"):
        assert np.array_equal(getattr(banks[0], f), getattr(banks[1], f), equal_nan=True), f


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), n_series=st.integers(1, 40), n=st.integers(5, 300), chunk=st.integers(1, 900),
       lateness_s=st.sampled_from([0, 30, 600]))
def test_the_windows_kernel_built_ahead_of_time_equals_the_jit_bit_for_bit(seed: int, n_series: int, n: int,
                                                                          chunk: int, lateness_s: int) -> None:
    rng = np.random.default_rng(seed)
    slot, ts, x = _mixed(rng, n_series, n)
    ts = ts // 20  # readings every few seconds: several per one-minute window
    lane = rng.integers(0, 3, len(ts))
    built = window_state._kernel()
    assert built.__name__.startswith("_upk_windows_")
    results = []
    for kernel in (built, windows_jit):
        window_state._KERNEL = kernel
        try:
            w = WindowState(WindowSettings(allowed_lateness_s=lateness_s))
            w.assign(np.arange(n_series), [f"m{i % 2}" for i in range(n_series)], now_wall_us=0)
            flags = np.zeros(len(ts), np.int16)
            out = []
            for k, i in enumerate(range(0, len(ts), chunk)):
                obs = w.observe("kafka", slot[i:i + chunk], ts[i:i + chunk], x[i:i + chunk], flags[i:i + chunk],
                                k * 10_000_000, lane=lane[i:i + chunk])
                out.append((obs.closed, obs.late, obs.watermark_us))
            out.append((w.close_idle(10**18), 0, 0))
            results.append((out, flags, dict(w.counters)))
        finally:
            window_state._KERNEL = built
    (a, fa, ca), (b, fb, cb) = results
    assert np.array_equal(fa, fb) and ca == cb
    for (wa, la, ma), (wb, lb, mb) in zip(a, b):
        assert (la, ma) == (lb, mb)
        for f in ("slot", "start_us", "end_us", "count", "mean", "min", "max", "std", "first", "last"):
            assert np.array_equal(getattr(wa, f), getattr(wb, f), equal_nan=True), f


def test_a_built_kernel_refuses_arguments_of_other_types() -> None:
    bank = DetectorBank(DetectionSettings())
    bank.assign(np.arange(2), ["a", "b"], ["m", "m"])
    k = window_state._kernel(), aot.kernel("urbanpulse.detect._kernel")
    args = [np.zeros(1, np.int64), np.ones(1, np.int64), np.zeros(1), bank.last_ts, bank.profile, bank.profiles.table,
            bank.state, bank.values, bank.changes, bank.gaps, np.zeros((1, len(DETECTOR_NAMES))), np.zeros(1),
            np.zeros(1, np.uint8), REFRESH_EVERY, EAGER_REFRESH, bank.season]
    k[1].process(*args)  # as built: fine
    for i, bad in [(0, np.zeros(1, np.int32)), (2, np.zeros(4)[::2]), (7, bank.values.astype(np.float64)),
                   (13, 8.0)]:
        wrong = list(args)
        wrong[i] = bad
        with pytest.raises(TypeError, match=f"process argument {i}"):
            k[1].process(*wrong)
    with pytest.raises(TypeError, match="arguments"):
        k[1].process(*args[:-1])


def test_a_failed_build_falls_back_to_numba(tmp_path: Path) -> None:
    """No C compiler: the service still analyses, with Numba's JIT, and says why in its log."""
    out = _python("import logging, sys\nlogging.basicConfig()\nimport numpy as np\n"
                  "from urbanpulse.analytics import compile_kernels\nfrom urbanpulse import aot\n"
                  "from urbanpulse.detect import DetectionSettings, DetectorBank\n"
                  "compile_kernels()\nb = DetectorBank(DetectionSettings())\nb.assign(np.arange(1), ['a'], ['m'])\n"
                  "s = b.score(np.zeros(50, np.int64), np.arange(50) * 60_000_000, np.arange(50.0))\n"
                  "print(aot.using_aot(), 'numba' in sys.modules, len(s))",
                  CC="/bin/false", URBANPULSE_KERNEL_DIR=str(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "True", "50"]
    assert "could not be compiled ahead of time" in out.stderr
    assert not list(tmp_path.glob("_upk_*"))


def test_a_build_says_it_is_compiling_before_it_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A first start (or `urbanpulse demo`) compiles for half a minute, minutes on a busy machine: the log says
    so before the build starts, where it would otherwise sit silent after its progress bar showed 100 %."""
    said_before: list[bool] = []

    def failing_build(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        said_before.append(any("compiling the analytics kernels" in r.getMessage() for r in caplog.records))
        return subprocess.CompletedProcess(args, 1, "", "no compiler here")

    monkeypatch.setattr(aot.subprocess, "run", failing_build)
    with caplog.at_level("INFO", logger="urbanpulse.aot"), pytest.raises(aot.KernelBuildError):
        aot.build(tmp_path, "0123456789abcdef")
    assert said_before == [True]
    assert str(tmp_path) in caplog.text and "once after an install or upgrade" in caplog.text


def test_a_build_already_done_says_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing to compile (another start built it while this one waited for the lock): no message."""
    k = "fedcba9876543210"
    for short, _ in aot.KERNELS.values():
        (tmp_path / f"_upk_{short}_{k}.so").write_bytes(b"")
    with caplog.at_level("INFO", logger="urbanpulse.aot"):
        aot.build(tmp_path, k)
    assert "compiling" not in caplog.text
