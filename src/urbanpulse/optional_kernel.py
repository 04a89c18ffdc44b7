"""A compiled kernel the service runs faster with but works without.

Why: the Kafka record parser (connectors/kafka_records.py) and the canonical JSON decoder
(formats/canonical_compiled.py) each have a pure-Python path beside them that gives the same
results. Both are loaded the same way: once per process, on a thread of their own when a source
opens (a first start after an install or upgrade builds the kernels, tens of seconds, and the
readings must flow meanwhile), warmed up by one call so that the first real call costs nothing,
and given up with one log line where they cannot be had. One class keeps those rules in one place.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import ModuleType

log = logging.getLogger(__name__)


class OptionalKernel:
    """One optional ahead-of-time kernel module (``urbanpulse.aot.KERNELS``): :attr:`module` is
    the loaded module, or None while it is not loaded or where it cannot be had."""

    def __init__(self, module: str, warm_up: Callable[[ModuleType], object], without: str,
                 thread_name: str) -> None:
        self.name = module
        self._warm_up = warm_up
        self._without = without  # what serves instead, for the log line
        self._thread_name = thread_name
        #: the loaded module; None: not loaded (yet), or it cannot be had
        self.module: ModuleType | None = None
        self._loading: threading.Thread | None = None
        self._lock = threading.Lock()

    def load(self) -> ModuleType | None:
        """Load the module (built ahead of time by urbanpulse.aot, building it if needed) and call
        it once; None if it cannot be had. Blocking: see :meth:`start_loading`."""
        if self.module is not None:
            return self.module
        from urbanpulse import aot

        try:
            mod = aot.kernel(self.name)
            self._warm_up(mod)
        except Exception as exc:  # noqa: BLE001 - the pure-Python path works without it
            log.warning("%s is not available (%s): %s", self.name, exc, self._without)
            return None
        self.module = mod
        return mod

    def start_loading(self) -> None:
        """:meth:`load` on a thread of its own, once per process."""
        with self._lock:
            if self._loading is None and self.module is None:
                self._loading = threading.Thread(target=self.load, name=self._thread_name, daemon=True)
                self._loading.start()
