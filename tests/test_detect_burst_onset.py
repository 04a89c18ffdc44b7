"""A routine burst onset on a server metric that bursts routinely scores below the families' pooled threshold
(issue 11; first36, onset37).

A server metric bursts now and then (a batch job, a cache flush: 1-6 readings at 1.5-3x its level). burst35 floors
the point emission on a burst's later readings by the series' own burst rate; a burst's *first* reading kept a
score of up to 1 - 1e-5 on main (the clean server copies' top rows of `detection_families.py --families
server,traffic`). `_burst_onset` now floors an onset's first reading's tail by BO_X x the series' own rate of held
onsets x their size's Lomax tail ("how rare is a jump this size on this series"), and caps reach33's score there
where the onset is no larger than the largest the series has shown. The property, on a controlled server-like series
(`benchmarks/onset37_wide.py`: level 10^0.5-10^4, multiplicative Student-t noise of 2-5 dof at 2-8 %, a daily cycle
on half the draws, bursts of 1-6 readings at 1.5-3x at a rate of 0.3-1 %, a 5-minute clock): after 1,000 readings
and 8 shown bursts, every onset no further from the level than the median of the onsets shown scores below
1 - 10^-2.82 (the pooled NAB threshold). Wide runs (`benchmarks/onset37_wide.py 1000 SEED`): main 62 / 59 of 1,000
draws fail, the branch 0 of 4,000 (benchmarks/README.md, onset37). Deterministic (`derandomize=True`)."""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import given, settings as hsettings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import onset37_wide  # noqa: E402


@given(seed=st.integers(0, 2**31 - 1))
@hsettings(max_examples=60, deadline=None, derandomize=True)
def test_a_routine_burst_onset_scores_below_the_pooled_threshold(seed: int) -> None:
    top, row = onset37_wide.onset_max(seed)
    assert top < onset37_wide.BAR, (seed, row, top)
