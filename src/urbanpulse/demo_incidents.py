"""Incidents the serve demo writes into the replayed Beijing data, so a visitor sees alerts at once.

Real data has real faults, but at unknown times; a person judging the service in five minutes
needs to see each kind of alert the detectors raise, soon. So the demo changes a few cells of
the replay, and nothing else:

- :class:`Spike`: one reading of one series jumps far above its recent level (a dust burst on
  the inlet, an electrical glitch) -> the ``spike`` detector;
- :class:`Stuck`: a series repeats one value for many hours (a frozen sensor) -> ``flatline``;
- :class:`Silent`: a whole station sends nothing for some hours (power or network cut) ->
  ``silence``, judged against the registry's hourly interval.

Hours are indexes into the stations' hourly rows (0 = the first replayed hour), so a schedule
means the same thing at any ``--speed``. :func:`inject` returns new arrays; the dataset is never
modified, and every cell an incident does not name is kept exactly (the property tests check it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from urbanpulse.datasets.beijing import StationData


@dataclass(frozen=True)
class Spike:
    """One reading of ``metric`` at ``station`` becomes ``value`` (None: :func:`spike_value`)."""

    station: str
    metric: str
    hour: int
    value: float | None = None

    def hours(self) -> range:
        return range(self.hour, self.hour + 1)


@dataclass(frozen=True)
class Stuck:
    """``metric`` at ``station`` repeats one value for ``length`` hours from ``start``: the median of
    its readings in the two days before, a typical value (a frozen sensor at its series' floor
    looks like a quiet night, and the flatline detector rightly leaves that alone)."""

    station: str
    metric: str
    start: int
    length: int

    def hours(self) -> range:
        return range(self.start, self.start + self.length)


@dataclass(frozen=True)
class Silent:
    """``station`` sends nothing for ``length`` hours from ``start``."""

    station: str
    start: int
    length: int

    def hours(self) -> range:
        return range(self.start, self.start + self.length)


Incident = Spike | Stuck | Silent

#: which detector each kind of incident is there to show
DETECTOR_OF: dict[type, str] = {Spike: "spike", Stuck: "flatline", Silent: "silence"}


#: replayed hours between two rounds of incidents: a new round every 48 s at 3600x
EVERY_HOURS = 48


def default_schedule(stations: list[str], first_hour: int, span: int, every: int = EVERY_HOURS) -> list[Incident]:
    """A round of incidents every ``every`` hours from ``first_hour`` up to ``span``, each round on
    three other stations (taken in turn): a silence first (it takes three missed hours to
    show), then the spike, then the stuck sensor (a dozen or more equal readings). At 3600x,
    one replayed hour a second, the first round's alerts are all up within about 20 s, and a
    visitor arriving later sees a fresh round within a minute. The spike and the stuck sensor
    use PM2.5, the series people watch, which varies all the time in Beijing."""
    n = len(stations)
    if n < 3:
        raise ValueError(f"the demo's incidents need three stations, got {n}")
    if every < 28:
        raise ValueError(f"rounds of incidents need at least 28 hours between them, got {every}")
    out: list[Incident] = []
    for k, base in enumerate(range(first_hour, span, every)):
        spiked, stuck, silent = (stations[(3 * k + i) % n] for i in range(3))
        out += [Silent(silent, base + 2, 12), Spike(spiked, "pm2_5", base + 4), Stuck(stuck, "pm2_5", base + 3, 24)]
    return out


def spike_value(recent: np.ndarray) -> float:
    """A spike far above the recent level of a particulate series, inside its physical range
    (the catalogue's 0..2000 ug/m3 for pm2_5), so it is stored and seen, not quarantined."""
    finite = recent[np.isfinite(recent)]
    level = float(np.max(finite)) if len(finite) else 50.0
    return float(min(1800.0, max(600.0, 8.0 * level)))


@dataclass(frozen=True)
class Injected:
    """A station's replay after injection: new values, and the hours it sends nothing."""

    data: StationData
    silent: np.ndarray  # bool per hour


def inject(data: StationData, incidents: list[Incident]) -> Injected:
    """``data`` with the incidents that name its station applied (copies; ``data`` is unchanged).
    Incidents reaching past the station's last hour are cut there; one starting past it does
    nothing. :class:`ValueError` for a metric the station does not have."""
    n = len(data)
    values = {m: v.copy() for m, v in data.values.items()}
    silent = np.zeros(n, dtype=bool)
    for inc in incidents:
        if inc.station != data.station:
            continue
        if not isinstance(inc, Silent) and inc.metric not in values:
            raise ValueError(f"incident {inc}: station {data.station} has no metric {inc.metric!r}; "
                             f"choose from {data.metrics}")
        if isinstance(inc, Silent):
            silent[max(0, inc.start):max(0, min(n, inc.start + inc.length))] = True
        elif isinstance(inc, Spike):
            if 0 <= inc.hour < n:
                column = values[inc.metric]
                column[inc.hour] = inc.value if inc.value is not None else spike_value(
                    data.values[inc.metric][max(0, inc.hour - 24):inc.hour])
        else:
            lo, hi = max(0, inc.start), max(0, min(n, inc.start + inc.length))
            if lo < hi:
                column = values[inc.metric]
                before = data.values[inc.metric][max(0, lo - 48):lo]
                finite = before[np.isfinite(before)]
                column[lo:hi] = float(np.median(finite)) if len(finite) else 50.0
    return Injected(dataclasses.replace(data, values=values), silent)
