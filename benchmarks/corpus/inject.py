"""Inject labelled faults into a clean stretch of a real series, reproducibly (seeded).

Each fault is scaled to the series' own local variability (robust sigma = 1.4826 * MAD of the
readings within +-`LOCAL_ROWS` of the onset), so it is visible but not absurd, and lasts less
than half of its NAB window, so the whole fault (onset and return to normal) sits inside the
labelled window:
- spike: one reading moved by 6-10 local sigmas;
- level_shift: readings offset by 3-5 local sigmas for a while, then back;
- drift: a linear ramp to 4-6 local sigmas, then back;
- flatline: the reading at the onset repeated (stuck sensor);
- gap: readings removed (an outage), the anomaly being the first reading after it.
Non-negative metrics (concentrations) get upward spikes, shifts and drifts only, so values
stay physically possible.
"""

from __future__ import annotations

import numpy as np

from corpus.events import Event, probation_rows, window_half

KINDS = ("spike", "level_shift", "drift", "flatline", "gap")
LOCAL_ROWS = 168


def _local_sigma(v: np.ndarray, i: int) -> tuple[float, float]:
    seg = v[max(0, i - LOCAL_ROWS) : i + LOCAL_ROWS]
    med = float(np.median(seg))
    sigma = 1.4826 * float(np.median(np.abs(seg - med)))
    if sigma <= 0:
        sigma = max(float(np.std(seg)), 1e-3 * (abs(med) + 1.0))
    return med, sigma


def inject(
    ts: np.ndarray,
    values: np.ndarray,
    n_faults: int,
    rng: np.random.Generator,
    non_negative: bool,
    existing: list[Event] = (),
) -> tuple[np.ndarray, np.ndarray, list[Event]]:
    """Return (timestamps, values, events) with `n_faults` faults of random kinds added.

    Onsets are drawn after the probationary period, at least one NAB window away from each
    other and from the `existing` (natural, already labelled) events, which are returned too."""
    n = len(values)
    v = values.astype(np.float64).copy()
    half = window_half(n, n_faults + len(existing))
    lo, hi = probation_rows(n) + half + 1, n - half - 2
    max_len = max(2, int(0.8 * half))
    fixed = [ev.row for ev in existing]
    for _ in range(5000):
        onsets = np.sort(rng.choice(np.arange(lo, hi), n_faults, replace=False))
        allrows = np.sort(np.r_[onsets, fixed])
        if np.all(np.diff(allrows) > 2 * half + max_len):
            break
    else:
        raise ValueError(f"cannot place {n_faults} faults in {n} rows")
    kinds = rng.choice(KINDS, n_faults, replace=True)
    drop = np.zeros(n, dtype=bool)
    planned: list[tuple[int, str, int]] = []
    for i, kind in zip(onsets.tolist(), kinds.tolist()):
        med, sigma = _local_sigma(values, i)
        sign = 1.0 if non_negative else float(rng.choice([-1.0, 1.0]))
        length = int(rng.integers(max(2, max_len // 3), max_len + 1))
        if kind == "spike":
            v[i] = v[i] + sign * rng.uniform(6, 10) * sigma
            length = 1
        elif kind == "level_shift":
            v[i : i + length] += sign * rng.uniform(3, 5) * sigma
        elif kind == "drift":
            v[i : i + length] += sign * rng.uniform(4, 6) * sigma * np.linspace(1 / length, 1, length)
        elif kind == "flatline":
            length = max(length, 12)
            v[i : i + length] = v[i]
        elif kind == "gap":
            length = int(rng.integers(6, 25))
            drop[i : i + length] = True
        planned.append((i, str(kind), length))
    keep = ~drop
    row_of = np.cumsum(keep) - 1
    events = [Event(int(row_of[ev.row]), ev.kind, ev.length) for ev in existing]
    for i, kind, length in planned:
        first = i + length if kind == "gap" else i  # gap: first reading after the outage
        events.append(Event(int(row_of[first]), kind, length))
    return ts[keep], v[keep], sorted(events, key=lambda ev: ev.row)
