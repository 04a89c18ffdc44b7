"""The windows' and detectors' Numba kernels compiled ahead of time into plain extension modules,
so that a service whose kernels are built never imports Numba (issue 14 item 5).

Why: importing Numba (57 MB RSS) and loading the kernels from its on-disk cache (59 MB more,
nearly all of it Numba's CPU target context, its typing and lowering registries and LLVM, not
machine code) were 116 MB of the service's 195 MB before its first series, more than the whole
budget left for 100,000 series under 300 MB. `numba.pycc` compiles the same Python functions with
the same LLVM and the same flags the JIT uses (``error_model="numpy"``, no fastmath, the GIL
released during the call) into a C extension module that needs only numpy when it runs: about
0.3 MB. The kernels' outputs are the JIT's bit for bit (tests/test_aot.py; the detectors' tests
compare the kernel the bank calls with its interpreted source).

How:
- :func:`kernel` returns the module a kernel's owner calls (`urbanpulse.detect._kernel` -> an
  object with ``process``), the ahead-of-time one when it is built for the current sources, else
  it builds it first, in a subprocess (so Numba is loaded there and never here);
- the build takes each exported function's signature from the JIT itself, after the owners'
  warm-up calls (so it follows whatever argument types the callers pass, and a kernel change
  needs no change here); ~30 s once per change of the sources, Numba, numpy or Python;
- modules are keyed by a hash of the kernel packages' sources and those versions, and stored in
  ``URBANPULSE_KERNEL_DIR``, else ``__pycache__/aot`` beside this package, else
  ``~/.cache/urbanpulse/kernels``;
- where the build fails (no C compiler or Python headers: the log says why) or
  ``URBANPULSE_KERNELS=jit``, the Numba-compiled module is returned: the same results, with
  Numba's memory and start-up.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import importlib.machinery
import importlib.metadata
import importlib.util
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_PKG = Path(__file__).resolve().parent

#: kernel module -> (its short name, the functions its owner calls)
KERNELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "urbanpulse.detect._kernel": ("detect", ("process",)),
    "urbanpulse.windows._kernel": ("windows", ("observe",)),
    "urbanpulse.connectors._records_kernel": ("records", ("frame", "records", "value_format")),
    "urbanpulse.formats._canonical_kernel": ("json", ("decode_objects",)),
}
#: sources whose change changes a kernel or the argument types its owner passes (the whole
#: packages: a rebuild too many costs half a minute, a stale build would be wrong)
_SOURCES = ("detect", "windows", "kernel_math.py", "model.py", "capacity.py", "aot.py",
            "connectors/_records_kernel.py", "formats/_canonical_kernel.py")

_lock = threading.Lock()
_loaded: dict[str, ModuleType] = {}
_failed: str | None = None


class KernelBuildError(RuntimeError):
    """The ahead-of-time build failed; the message carries the build's own error output."""


def mode() -> str:
    """``aot`` (default) or ``jit`` (``URBANPULSE_KERNELS=jit``: always Numba's JIT)."""
    m = os.environ.get("URBANPULSE_KERNELS", "aot").strip().lower()
    return m if m in ("aot", "jit") else "aot"


def key() -> str:
    """Hash of what the built modules depend on: the kernel packages' sources, the versions of
    Python, Numba, llvmlite and numpy, and this machine's CPU (the build targets the host CPU)."""
    h = hashlib.sha256()
    _hash_sources(h)
    for dist in ("numba", "llvmlite", "numpy"):
        h.update(f"{dist}={importlib.metadata.version(dist)};".encode())
    h.update(f"{sys.version};{platform.machine()};{_cpu_flags()}".encode())
    return h.hexdigest()[:16]


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features", "model name")):
                return line
    except OSError:
        pass
    return platform.processor()


def cache_dir() -> Path:
    """Where built modules live (the first writable of the places in the module docstring)."""
    env = os.environ.get("URBANPULSE_KERNEL_DIR")
    candidates = [Path(env)] if env else [_PKG / "__pycache__" / "aot", Path.home() / ".cache/urbanpulse/kernels"]
    for d in candidates:
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(d, os.W_OK):
            return d
    return candidates[-1]


def _module_name(short: str, k: str) -> str:
    return f"_upk_{short}_{k}"


def _import_built(path: Path, name: str) -> ModuleType:
    """The built extension, its functions wrapped in checks of the argument types it was built
    for (a compiled function trusts its arguments: an int32 array where it expects int64, or a
    strided view where it expects a contiguous array, would be read out of bounds)."""
    specs = json.loads(path.with_suffix(".json").read_text())
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None
    ext = importlib.util.module_from_spec(spec)
    loader.exec_module(ext)
    mod = ModuleType(name, f"ahead-of-time build of {path.name}")
    mod.__file__ = str(path)
    for fn, args in specs.items():
        setattr(mod, fn, _checked(getattr(ext, fn), fn, args))
    return mod


def _checked(fn: Callable[..., Any], name: str, specs: list[Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        if len(args) != len(specs):
            raise TypeError(f"{name}: {len(args)} arguments, built for {len(specs)}")
        for i, (a, sp) in enumerate(zip(args, specs)):
            _check(a, sp, f"{name} argument {i}")
        return fn(*args)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"{name} (built ahead of time; arguments checked against the types it was built for)"
    return call


def _check(a: Any, spec: Any, where: str) -> None:
    kind = spec[0]
    if kind == "array":
        _, dtype, ndim, contiguous, *readonly = spec  # a read-only array argument: only read, never written
        if not (isinstance(a, np.ndarray) and a.dtype == np.dtype(dtype) and a.ndim == ndim
                and a.flags.aligned and (a.flags.writeable or readonly) and (a.flags.c_contiguous or not contiguous)):
            got = f"{a.dtype}[{a.ndim}d, contiguous={a.flags.c_contiguous}]" if isinstance(a, np.ndarray) else type(a)
            raise TypeError(f"{where}: built for a {'' if readonly else 'writeable '}"
                            f"{'C-contiguous ' if contiguous else ''}{ndim}-d {dtype} "
                            f"array, got {got}; convert it (np.ascontiguousarray(x, {dtype}))")
    elif kind == "tuple":
        if not (isinstance(a, tuple) and len(a) == len(spec[1])):
            raise TypeError(f"{where}: built for a tuple of {len(spec[1])}, got {type(a).__name__}")
        for j, (x, sp) in enumerate(zip(a, spec[1])):
            _check(x, sp, f"{where}[{j}]")
    elif kind == "int":
        if not isinstance(a, (int, np.integer)) or isinstance(a, (bool, np.bool_)):
            raise TypeError(f"{where}: built for an integer, got {type(a).__name__}")
    elif kind == "float":
        if not isinstance(a, (int, float, np.integer, np.floating)) or isinstance(a, (bool, np.bool_)):
            raise TypeError(f"{where}: built for a number, got {type(a).__name__}")


def _spec(ty: Any) -> Any:
    """A numba argument type as the JSON-able spec `_check` reads (build side)."""
    from numba.core import types
    from numba.np.numpy_support import as_dtype

    if isinstance(ty, types.Array):
        if not ty.aligned:
            raise KernelBuildError(f"unsupported argument type {ty} (unaligned array)")
        spec = ["array", as_dtype(ty.dtype).name, ty.ndim, ty.layout == "C"]
        return spec if ty.mutable else [*spec, "readonly"]
    if isinstance(ty, types.BaseTuple):
        return ["tuple", [_spec(t) for t in ty.types]]
    if isinstance(ty, types.Integer):
        return ["int"]
    if isinstance(ty, types.Float):
        return ["float"]
    raise KernelBuildError(f"unsupported argument type {ty}")


def kernel(module: str) -> ModuleType:
    """The module to call for kernel `module` (a key of :data:`KERNELS`): built ahead of time,
    building it now if needed, else (build failed, or ``URBANPULSE_KERNELS=jit``) Numba's."""
    global _failed
    with _lock:
        if module in _loaded:
            return _loaded[module]
        if mode() == "jit" or _failed is not None:
            drop_stale_jit_cache(module)
            return importlib.import_module(module)
        k = key()
        short, _ = KERNELS[module]
        d = cache_dir()
        path = d / f"{_module_name(short, k)}.so"
        try:
            if not path.is_file():
                build(d, k)
            mod = _import_built(path, _module_name(short, k))
        except (KernelBuildError, OSError, ImportError) as exc:
            _failed = str(exc)
            log.warning("the analytics kernels could not be compiled ahead of time, so Numba compiles them in "
                        "this process (same results; about 116 MB more memory and a slower start): %s", exc)
            drop_stale_jit_cache(module)
            return importlib.import_module(module)
        _loaded[module] = mod
        return mod


def sources_key() -> str:
    """Hash of the kernel packages' sources alone (what :func:`key` hashes before the versions)."""
    h = hashlib.sha256()
    _hash_sources(h)
    return h.hexdigest()[:16]


def _hash_sources(h: Any) -> None:
    """Feed the kernel packages' source files (names and bytes, in a fixed order) into hash `h`."""
    files: list[Path] = []
    for name in _SOURCES:
        p = _PKG / name
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    for f in files:
        h.update(str(f.relative_to(_PKG)).encode())
        h.update(f.read_bytes())


def drop_stale_jit_cache(module: str) -> int:
    """Remove Numba's on-disk cache of kernel `module` when the kernel sources changed since it was
    written; returns how many cache files were removed.

    Why: Numba keys a cached function on its own source file's time stamp and size only, while a
    kernel reads constants from other modules (`detect/layout.py`'s state columns and constants,
    frozen into the machine code at compile time): after a change to layout.py alone, a JIT run would
    load the old machine code and compute with the old constants, silently. A marker beside the
    cache records the sources' hash (:func:`sources_key`); on a mismatch the module's cache files
    go (Numba recompiles once). Only the in-tree cache (`__pycache__` beside the module) is handled;
    with ``NUMBA_CACHE_DIR`` set, clear that directory after changing a kernel's constants."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return 0
    src = Path(spec.origin)
    cache = src.parent / "__pycache__"
    marker = cache / f".{src.stem}.sources"
    k = sources_key()
    try:
        if marker.read_text().strip() == k:
            return 0
    except OSError:
        pass
    removed = 0
    for f in list(cache.glob(f"{src.stem}.*.nbi")) + list(cache.glob(f"{src.stem}.*.nbc")):
        try:
            f.unlink()
            removed += 1
        except OSError:
            continue
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".{src.stem}.sources.{os.getpid()}"
        tmp.write_text(k)
        os.replace(tmp, marker)
    except OSError:
        pass  # a read-only tree: Numba's cache is then elsewhere too, nothing of ours to mark
    return removed


def using_aot() -> bool:
    """Whether every kernel this process has loaded is the ahead-of-time build (none loaded: False)."""
    return bool(_loaded) and _failed is None and mode() == "aot"


def build(directory: Path, k: str | None = None, timeout: float = 900.0) -> None:
    """Build every kernel module into `directory` for key `k`, in a subprocess that loads Numba;
    one build at a time per directory (a file lock), the result moved into place atomically.

    The build process dies with the process that started it (a killed test run, a Ctrl-C'd demo): left
    running, it held 3.3 GB for minutes while the next start, finding the lock free, built a second one
    beside it. It also holds the lock itself (where it could outlive its parent, the next start waits for
    it and uses what it built), and a start that finds a build running says whose and waits."""
    k = k or key()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".build.lock", "a+") as lock:
        _take_build_lock(lock, directory)  # a concurrent start builds once, the others wait for it
        if all((directory / f"{_module_name(s, k)}.so").is_file() for s, _ in KERNELS.values()):
            return
        _drop_abandoned_builds(directory)
        # a first start is otherwise silent here for half a minute (minutes on a busy machine)
        log.info("compiling the analytics kernels into %s (once after an install or upgrade: about 30 s on an idle "
                 "2-core machine, longer on a busy one; later starts load them in under a second)", directory)
        env = dict(os.environ, URBANPULSE_KERNELS="jit",
                   PYTHONPATH=os.pathsep.join([str(_PKG.parent), *filter(None, [os.environ.get("PYTHONPATH")])]))
        with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as tmp:
            try:
                out = subprocess.run([sys.executable, "-m", "urbanpulse.aot", tmp, k, str(os.getpid())], env=env,
                                     capture_output=True, text=True, timeout=timeout, pass_fds=(lock.fileno(),))
            except subprocess.TimeoutExpired as exc:
                # a KernelBuildError, so the caller falls back to the JIT: uncaught, it cost the whole run its
                # analytics (a first `urbanpulse demo` on a busy machine stored 1.1 M readings and raised no alert)
                raise KernelBuildError(f"the kernel build did not finish within {timeout:.0f} s (a busy machine?); "
                                       "the next start tries again, or build them when the machine is quieter "
                                       "with `python -c 'from urbanpulse.analytics import compile_kernels; "
                                       "compile_kernels()'`") from exc
            if out.returncode != 0:
                raise KernelBuildError(f"the kernel build exited with {out.returncode}: "
                                       f"{(out.stderr or out.stdout).strip()[-1500:]}")
            missing = [short for short, _ in KERNELS.values()
                       if not (directory / f"{_module_name(short, k)}.so").is_file()]
            if missing:  # the build files its modules in itself (see the module's __main__)
                raise KernelBuildError(f"the kernel build ended without filing in {', '.join(missing)}: "
                                       f"{(out.stderr or out.stdout).strip()[-1500:]}")
        for stale in directory.glob("_upk_*"):  # earlier sources' builds
            if stale.stem.rsplit("_", 1)[-1] != k:
                stale.unlink(missing_ok=True)


def _take_build_lock(lock: Any, directory: Path) -> None:
    """Take the directory's build lock, saying whose build this start waits for when another holds it, then
    write this process's id and the time into the lock file for the next one to name."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        log.warning("the analytics kernels are being compiled into %s by %s; waiting for that build and using it "
                    "(one build at a time: each takes up to a few GB of memory)", directory, holder)
        fcntl.flock(lock, fcntl.LOCK_EX)
        log.info("the kernel build this start waited for has ended")
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()} (since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
    lock.flush()


def _drop_abandoned_builds(directory: Path) -> None:
    """Remove the temporary folders of builds whose process was killed (with the lock held, no build runs)."""
    for left in directory.glob(".build-*"):
        shutil.rmtree(left, ignore_errors=True)


def _file_in(tmp: Path, directory: Path, name: str) -> None:
    """Move a built module and its argument types from the build's folder into `directory`, atomically each."""
    os.replace(tmp / f"{name}.json", directory / f"{name}.json")  # before the .so it describes
    os.replace(tmp / f"{name}.so", directory / f"{name}.so")


def _die_with_parent(parent: int) -> None:
    """In the build process: be killed when the process that started it dies (Linux ``PR_SET_PDEATHSIG``), and
    stop now if it already has. Elsewhere the build runs to its end, holding the lock, and files its modules in."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:  # died before the line above: nobody would be told
            os._exit(3)


def _same_sources(k: str, when: str) -> None:
    """Refuse a build whose sources are not the ones key `k` names (perf42).

    Why: the parent computes `k` before this subprocess reads the sources; a kernel edited meanwhile (during the
    ~30 s build) would be compiled from the new sources and filed under the old key, and once the edit is undone
    the old key would load machine code that is not the source, in the service, the tests and `urbanpulse
    detect`, while a JIT run computes the source. Checked before the kernels are imported and after they are
    compiled, so every source the build read was read while the key held; a refused build leaves nothing behind
    (the parent falls back to the JIT and the next start builds again)."""
    now = key()
    if now != k:
        raise KernelBuildError(f"the kernel sources changed {when} the build (key {now}, the build was for {k}): "
                               "not filed under the old key")


def _build_here(out_dir: str, k: str) -> None:
    """The build subprocess: JIT-compile the kernels through their owners' warm-up (which fixes
    the argument types), then compile each exported function's one signature with numba.pycc."""
    _same_sources(k, "before")
    import numba.pycc.compiler as pycc_compiler
    from numba.pycc import CC

    from urbanpulse.analytics import compile_kernels

    compile_kernels()  # URBANPULSE_KERNELS=jit here: the owners' warm-up calls type the kernels
    plain_flags = pycc_compiler.Flags

    def flags():  # noqa: ANN202 - the JIT's options for the kernels (numba.pycc's own defaults differ)
        f = plain_flags()
        f.error_model = "numpy"
        f.release_gil = True
        return f

    pycc_compiler.Flags = flags
    for module, (short, functions) in KERNELS.items():
        mod = importlib.import_module(module)
        cc = CC(_module_name(short, k))
        cc.output_dir = out_dir
        cc.output_file = f"{_module_name(short, k)}.so"
        cc.target_cpu = "host"
        # a module that allocates nothing says so (USES_NRT = False): built without Numba's reference
        # counting, whose atomic increments around every helper call taking an array cost it 3x
        cc.use_nrt = getattr(mod, "USES_NRT", True)
        specs = {}
        for fn in functions:
            disp = getattr(mod, fn)
            sigs = list(disp.overloads.values())
            if len(sigs) != 1:
                raise KernelBuildError(f"{module}.{fn} was compiled for {len(sigs)} signatures after the warm-up, "
                                       "expected exactly one (its owner passes arguments of varying types)")
            sig = sigs[0].signature
            specs[fn] = [_spec(t) for t in sig.args]
            cc.export(fn, sig)(disp.py_func)
        cc.compile()
        (Path(out_dir) / f"{_module_name(short, k)}.json").write_text(json.dumps(specs))
    _same_sources(k, "during")


if __name__ == "__main__":
    if len(sys.argv) > 3:
        _die_with_parent(int(sys.argv[3]))
    _build_here(sys.argv[1], sys.argv[2])
    for _short, _ in KERNELS.values():  # filed in by the build itself, so a build that outlives its parent is used
        _file_in(Path(sys.argv[1]), Path(sys.argv[1]).parent, _module_name(_short, sys.argv[2]))
