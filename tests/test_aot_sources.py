"""A kernel build is filed only under the key of the sources it compiled (urbanpulse/aot.py, perf42).

Why: the parent process computes the sources' key before the build subprocess reads them; a kernel edited during
the ~30 s build was compiled from the new sources and filed under the old key, and once the edit was undone the old
key loaded machine code that was not the source (the AOT kernels then disagree with the JIT, which compiles the
source: bit-identity between live scoring and `urbanpulse detect` gone, silently). The build now checks the key
before it imports a kernel and after it compiled them; here: a build asked for any key other than the sources'
refuses at once and writes nothing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from urbanpulse import aot


@settings(max_examples=5, deadline=None)
@given(other=st.text("0123456789abcdef", min_size=16, max_size=16))
def test_a_build_for_a_key_other_than_the_sources_is_refused_before_it_compiles(other: str) -> None:
    """`_build_here` (the build subprocess's body) given a key the sources do not hash to raises KernelBuildError
    and leaves its output directory empty (main compiled and filed the kernels under that key)."""
    k = other if other != aot.key() else other[::-1] + "x"
    with tempfile.TemporaryDirectory() as out:
        with pytest.raises(aot.KernelBuildError, match="sources changed"):
            aot._build_here(out, k)
        assert list(Path(out).iterdir()) == []
