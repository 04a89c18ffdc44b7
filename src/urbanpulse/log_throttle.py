"""Summarise repeated log messages instead of writing each one.

With its broker gone, aiokafka logs every failed connection, metadata request, fetch and
coordinator lookup: about 60 errors a second, 4 MB in ten minutes, burying everything else.
:class:`RepeatedMessageFilter` lets the first occurrence of a message through, then one per
back-off step (1 s, 2 s, 4 s ... up to 60 s) with how many it held back in between; a message
that stays quiet for two steps starts over. A message is its logger, level and unformatted
template (``"Unable connect to node with id %s: %s"``), so the same failure on another node or
with another errno still counts as a repeat.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

#: loggers whose messages are summarised: the Kafka client and our Kafka connector
THROTTLED_LOGGERS = ("aiokafka", "urbanpulse.connectors.kafka")
#: distinct messages remembered; beyond this the least recently seen are forgotten
MAX_KEYS = 512


@dataclass(slots=True)
class _Seen:
    step: float
    next_at: float
    last_seen: float
    held: int = 0


class RepeatedMessageFilter(logging.Filter):
    """A logging filter letting each repeated message through once per back-off step, with a count."""

    def __init__(self, first_step_s: float = 1.0, max_step_s: float = 60.0, clock=time.monotonic) -> None:  # noqa: ANN001
        super().__init__()
        self.first_step_s = first_step_s
        self.max_step_s = max_step_s
        self.clock = clock
        self._seen: dict[tuple[str, int, str], _Seen] = {}
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        key = (record.name, record.levelno, str(record.msg))
        seen = self._seen.get(key)
        if seen is None or now - seen.last_seen > 2 * seen.step:
            if seen is None and len(self._seen) >= MAX_KEYS:
                oldest = min(self._seen, key=lambda k: self._seen[k].last_seen)
                del self._seen[oldest]
            elif seen is not None and seen.held:  # quiet since: account for the last ones held back
                record.msg = f"{record.msg} [and {seen.held} more time(s) before a pause]"
            self._seen[key] = _Seen(self.first_step_s, now + self.first_step_s, now)
            return True
        seen.last_seen = now
        if now < seen.next_at:
            seen.held += 1
            self.suppressed += 1
            return False
        if seen.held:
            record.msg = f"{record.msg} [and {seen.held} more time(s) in the last {seen.step:g}s]"
        seen.held = 0
        seen.step = min(seen.step * 2, self.max_step_s)
        seen.next_at = now + seen.step
        return True


_installed: RepeatedMessageFilter | None = None


def throttle_repeated_messages(prefixes: tuple[str, ...] = THROTTLED_LOGGERS) -> RepeatedMessageFilter:
    """Attach one shared :class:`RepeatedMessageFilter` to every existing logger under ``prefixes``
    (a logger's filters see only the records it creates, so each module logger gets it). Idempotent."""
    global _installed
    if _installed is None:
        _installed = RepeatedMessageFilter()
    names = [n for n in list(logging.Logger.manager.loggerDict) if n.startswith(prefixes)]
    for name in {*names, *prefixes}:
        logger = logging.getLogger(name)
        if _installed not in logger.filters:
            logger.addFilter(_installed)
    return _installed
