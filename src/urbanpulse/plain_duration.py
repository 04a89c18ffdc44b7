"""Durations as an operator reads them ("30 days", "2 h 5 min"), for messages and quarantine details.

A reason written as ``2.592e+06s`` makes the reader do arithmetic before they can act; the same
limit as "30 days" does not (newcomer46).
"""

from __future__ import annotations

import math

#: (seconds, singular, plural) from the largest unit down
_UNITS = ((86400, "day", "days"), (3600, "h", "h"), (60, "min", "min"), (1, "s", "s"))


def plain_duration(seconds: float) -> str:
    """``seconds`` in at most two whole units, the larger first: ``30 days``, ``1 day 6 h``, ``45 min``,
    ``12 s``; below a second ``0.25 s``; a non-finite or negative input as its number of seconds."""
    if not math.isfinite(seconds) or seconds < 0:
        return f"{seconds:g} s"
    if seconds < 1:
        return f"{seconds:.3g} s"
    left = int(seconds)  # whole seconds: a limit of 2,592,000.4 s is "30 days"
    parts: list[str] = []
    for size, one, many in _UNITS:
        n, left = divmod(left, size)
        if n or parts:
            if n:
                parts.append(f"{n} {one if n == 1 else many}")
            if len(parts) == 2 or (parts and not n):
                break
    return " ".join(parts)
