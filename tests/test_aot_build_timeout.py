"""A kernel build that runs out of time falls back to Numba's JIT like any failed build.

Session 44's newcomer ran README's `urbanpulse demo` for the first time on the shared 2-core machine
(load average 7, other kernel builds running): the ahead-of-time build passed its 900 s timeout,
`subprocess.TimeoutExpired` escaped `aot.kernel` (which falls back only on KernelBuildError, OSError
and ImportError), stream analytics was switched off for the whole run, and the demo stored 1.1 M
readings, printed `alerts 0 (none)` and exited 0. A timeout is now a KernelBuildError that says what
happened and what to do, and the kernel comes from the JIT.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from urbanpulse import aot


def _timing_out(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
    raise subprocess.TimeoutExpired(cmd=[str(a) for a in args], timeout=kwargs.get("timeout") or 0.0)


def test_a_build_that_times_out_is_a_build_error_naming_the_time_and_the_way_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aot.subprocess, "run", _timing_out)
    with pytest.raises(aot.KernelBuildError, match=r"did not finish within 900 s") as caught:
        aot.build(tmp_path, "0123456789abcdef")
    assert "compile_kernels" in str(caught.value)
    assert not list(tmp_path.glob("_upk_*")) and not list(tmp_path.glob(".build-*"))  # nothing half-built left


def test_a_kernel_whose_build_times_out_comes_from_the_jit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(aot.subprocess, "run", _timing_out)
    monkeypatch.setenv("URBANPULSE_KERNEL_DIR", str(tmp_path))
    monkeypatch.delenv("URBANPULSE_KERNELS", raising=False)
    monkeypatch.setattr(aot, "_loaded", {})
    monkeypatch.setattr(aot, "_failed", None)
    with caplog.at_level("WARNING", logger="urbanpulse.aot"):
        module = aot.kernel("urbanpulse.windows._kernel")
    from urbanpulse.windows import _kernel as windows_jit
    assert module is windows_jit
    assert "could not be compiled ahead of time" in caplog.text and "900 s" in caplog.text
    assert not aot.using_aot()
