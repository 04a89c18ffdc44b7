"""`detection_families.py` with every family's clock start moved by some days: does a gain hold on other weekdays?

Every generated family starts at `families.T0_US` (a Tuesday, 22:13 UTC), so every injected onset falls on the same
weekday and hour of the UTC calendar. A stage gated on the calendar (online43's count drop scores Tuesday to
Thursday only) can look better there than on data whose onsets fall on any day. Moving the start by 0-6 days and
averaging shows what it does over onset weekdays (session 43: `online` 47.6 -> 55.0 on average over the seven
shifts, Friday to Sunday onsets -0.3 to -1.4).

    SHIFT_DAYS=3 PYTHONPATH=src:benchmarks python benchmarks/families_shifted.py --seeds 100 --nab --families online

Every argument goes to `detection_families.py`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import families, families_blind, families_blind2  # noqa: E402

DAY_US = 86_400_000_000


def shift(days: float) -> None:
    """Move the clock start of every family module by `days` (each module bound `T0_US` at import)."""
    d = int(days * DAY_US)
    for module in (families, families_blind, families_blind2):
        module.T0_US = module.T0_US + d


if __name__ == "__main__":
    shift(float(os.environ.get("SHIFT_DAYS", "0")))
    import detection_families  # noqa: E402

    sys.argv = ["detection_families.py", *sys.argv[1:]]
    detection_families.main()
