"""A failure logged with its traceback, but not once per occurrence.

Decoding hostile input and analysing batches can fail on every message a sender chooses to
send; one traceback per failure would let that sender flood the log and bury everything else.
"""

from __future__ import annotations

import logging
import time

#: a repeated failure (decode isolation, analytics) is logged with its traceback at most this often
FAILURE_LOG_INTERVAL_S = 60.0


class ThrottledLog:
    """Logs a kind of failure with its traceback the first time, then at most once per
    ``FAILURE_LOG_INTERVAL_S`` with how many happened in between."""

    def __init__(self, logger: logging.Logger, message: str) -> None:
        self.log = logger
        self.message = message
        self.total = 0
        self._since = 0
        self._next = 0.0

    def failed(self, exc: BaseException, *args: object) -> None:
        """Count one failure; log it (``message % args``) unless one was logged recently."""
        self.total += 1
        self._since += 1
        now = time.monotonic()
        if now < self._next:
            return
        self.log.error(self.message + " (%d time(s) since the last report, %d in all)", *args, self._since,
                       self.total, exc_info=exc)
        self._since = 0
        self._next = now + FAILURE_LOG_INTERVAL_S
