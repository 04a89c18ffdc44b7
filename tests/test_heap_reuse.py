"""The service's heap setting (heap_reuse.py, ``ingest.heap_keep_mb``): applied, configurable, off.

Why: a batch's freed memory kept by glibc is what saves the next batch its page faults
(benchmarks/README.md ``lat19``); kept memory is also RSS, so the bound must be the configured one
and 0 must give glibc's own behaviour back. Observed from outside, in a fresh process configured as
an operator would (``URBANPULSE_INGEST__HEAP_KEEP_MB``): memory freed at the top of the heap stays
resident while it is under the setting, and goes back to the system with the setting off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from urbanpulse.config import IngestSettings, load_settings
from urbanpulse.heap_reuse import keep_freed_heap

SRC = str(Path(__file__).resolve().parent.parent / "src")

_CHILD = r"""
import json, sys
import psutil
from urbanpulse.capacity import keep_large_arrays_off_the_heap
from urbanpulse.config import load_settings
from urbanpulse.heap_reuse import keep_freed_heap
keep_large_arrays_off_the_heap()  # as `urbanpulse run` does first (runner.py), then the setting
applied = keep_freed_heap(load_settings().ingest.heap_keep_mb)
freed_mb = int(sys.argv[1])
proc = psutil.Process()
base = proc.memory_info().rss
pieces = [bytearray(256 * 1024) for _ in range(4 * freed_mb)]  # heap (under the 1 MiB mmap threshold), touched
while pieces:
    pieces.pop()  # freed last first: each piece joins the free top of the heap
print(json.dumps({"applied": applied, "kept": (proc.memory_info().rss - base) / 2**20}))
"""


def _run(keep_mb: int | None, freed_mb: int) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    env.pop("URBANPULSE_INGEST__HEAP_KEEP_MB", None)
    if keep_mb is not None:
        env["URBANPULSE_INGEST__HEAP_KEEP_MB"] = str(keep_mb)
    out = subprocess.run([sys.executable, "-c", _CHILD, str(freed_mb)], env=env, check=True,
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout)


@given(keep_mb=st.integers(24, 96), freed_mb=st.integers(4, 20))
@settings(max_examples=6, deadline=None)
def test_memory_freed_under_the_setting_stays_in_the_process(keep_mb: int, freed_mb: int) -> None:
    """Freed heap under ``heap_keep_mb`` stays resident (for the next batch to reuse)."""
    r = _run(keep_mb, freed_mb)
    assert r["applied"], "glibc's mallopt expected (CI runs Debian)"
    assert r["kept"] >= freed_mb - 1.5


@given(freed_mb=st.integers(4, 20))
@settings(max_examples=4, deadline=None)
def test_the_off_switch_gives_the_freed_memory_back(freed_mb: int) -> None:
    """``heap_keep_mb: 0``: nothing is set, glibc returns the free top of the heap at once."""
    r = _run(0, freed_mb)
    assert not r["applied"]
    assert r["kept"] < 1.5


def test_the_default_is_applied_and_documented() -> None:
    """Without the variable the default (8 MiB) applies; the example config states the same value."""
    r = _run(None, 4)
    assert r["applied"] and r["kept"] >= 4 - 1.5
    example = Path(__file__).resolve().parent.parent / "config" / "urbanpulse.example.yaml"
    assert load_settings(example).ingest.heap_keep_mb == IngestSettings().heap_keep_mb == 8


def test_zero_is_off_in_process() -> None:
    assert keep_freed_heap(0) is False
