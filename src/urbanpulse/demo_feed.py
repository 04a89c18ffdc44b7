"""The serve demo's replay: the Beijing stations hour by hour, at a chosen speed, optionally forever.

One message per station and hour (a JSON array of its readings), all stations of an hour
together, as a city feed arrives: event time moves forward for all of them at once, so the
source's watermark -- and with it silence, window closing and alert auto-resolve -- behaves
as it would live. A backlog of hours goes first at full speed (history for the charts, warm
detectors), then one replayed hour every ``1 / hours_per_second`` seconds.

Two clocks. ``live`` (the default of ``urbanpulse demo --serve``) stamps each replayed hour
with the wall-clock time it is sent at (the backlog just before the start, one interval
apart): the values are Beijing's, the feed is a present-day one whose sensors report every
``1 / hours_per_second`` seconds, so a page, a "last hour" chart or a Grafana time range
relative to now shows it as it comes. ``original`` keeps the dataset's own hours (2013..2017).
Looping starts again at the first hour; with the original clock every timestamp is moved on
by the replayed span, so in both clocks readings keep going forward and a loop never collides
with the one before (nothing is "already stored", and the detectors score every reading).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import orjson

from urbanpulse.connectors.base import Sink
from urbanpulse.demo_incidents import Injected
from urbanpulse.formats.base import MessageBatch

HOUR_MS = 3_600_000


class HourlyFeed:
    """The messages of each replayed hour, built when asked (four years of twelve stations is
    420,768 messages: too many to hold)."""

    def __init__(self, stations: list[Injected], hours: int | None = None) -> None:
        if not stations:
            raise ValueError("the replay needs at least one station")
        self.stations = stations
        longest = min(len(s.data) for s in stations)
        self.hours = longest if hours is None else max(1, min(hours, longest))
        #: how far each loop moves the timestamps on: the replayed span, so loop k+1 follows loop k
        self.span_ms = int(stations[0].data.ts_ms[self.hours - 1] - stations[0].data.ts_ms[0]) + HOUR_MS
        self._columns = [[(m, s.data.units[m], s.data.values[m]) for m in s.data.metrics] for s in stations]

    def ts_ms(self, hour: int, loop: int = 0) -> int:
        """Event time of replayed ``hour`` in ``loop`` (UTC epoch milliseconds)."""
        return int(self.stations[0].data.ts_ms[hour]) + loop * self.span_ms

    def messages(self, hour: int, loop: int = 0, ts_ms: int | None = None) -> list[bytes]:
        """One canonical JSON array per station that is not silent at ``hour``, stamped ``ts_ms``
        (the live clock) or with the hour's own time moved on by ``loop`` spans."""
        out = []
        shift = loop * self.span_ms
        for station, columns in zip(self.stations, self._columns):
            if station.silent[hour]:
                continue
            ts = int(station.data.ts_ms[hour]) + shift if ts_ms is None else ts_ms
            sid = station.data.sensor_id
            out.append(orjson.dumps([{"sensor_id": sid, "metric": m, "ts": ts,
                                      "value": None if v[hour] != v[hour] else float(v[hour]), "unit": u}
                                     for m, u, v in columns]))
        return out


class PacedReplaySource:
    """A source (see :mod:`urbanpulse.connectors.base`) that hands :class:`HourlyFeed` hours to
    the pipeline at ``hours_per_second`` after a ``backlog`` sent at once. Its position survives a
    restart by the supervisor: it goes on where it stopped."""

    name = "beijing-replay"

    def __init__(self, feed: HourlyFeed, hours_per_second: float, backlog: int = 0, loop: bool = False,
                 live_clock: bool = False) -> None:
        if hours_per_second <= 0:
            raise ValueError(f"hours_per_second must be positive, got {hours_per_second}")
        if live_clock and hours_per_second > 1000:
            raise ValueError(f"with the live clock one replayed hour must take at least a millisecond (timestamps are "
                             f"whole milliseconds), got {hours_per_second:g} hours a second")
        self.live_clock = live_clock
        #: wall-clock milliseconds between two replayed hours (the live clock's reporting interval)
        self.interval_ms = 1000.0 / hours_per_second
        self._t0_ms: int | None = None  # the live clock's stamp of the first paced hour
        self.feed = feed
        self.hours_per_second = hours_per_second
        self.backlog = max(0, min(backlog, feed.hours))
        self.loop = loop
        self.hour = 0  # next hour to send
        self.loops = 0  # completed passes
        self.sent_hours = 0
        self.sent_messages = 0
        self.finished = asyncio.Event()
        self._paced_from: float | None = None  # monotonic time at which hour `backlog` was due

    def health(self) -> dict[str, object]:
        return {"connected": True, "replayed_hours": self.sent_hours, "loops": self.loops,
                "replayed_to": self.replayed_to(), "finished": self.finished.is_set()}

    def replayed_to(self) -> str | None:
        """The dataset's time of the last hour handed over (ISO 8601; with the original clock also
        its event time), None before the first."""
        if self.sent_hours == 0:
            return None
        hour, loop = (self.hour - 1, self.loops) if self.hour > 0 else (self.feed.hours - 1, self.loops - 1)
        return datetime.fromtimestamp(self.feed.ts_ms(hour, loop) / 1000, timezone.utc).isoformat()

    async def run(self, sink: Sink, stopping: asyncio.Event) -> None:
        """Send hours until the span ends (without ``loop``) or ``stopping`` is set; then drain."""
        chunk: list[bytes] = []
        if self._t0_ms is None:
            self._t0_ms = time.time_ns() // 1_000_000
        while not stopping.is_set():
            if self.hour >= self.feed.hours:
                if not self.loop:
                    break
                self.hour, self.loops = 0, self.loops + 1
            chunk.extend(self.feed.messages(self.hour, self.loops, self.stamp(self.sent_hours)))
            self.hour += 1
            self.sent_hours += 1
            if self.sent_hours < self.backlog and len(chunk) < 500:
                continue  # the backlog goes in large batches, as fast as storage takes it
            if chunk:
                await sink.submit(MessageBatch(source=self.name, payloads=chunk, received_ns=time.time_ns()))
                self.sent_messages += len(chunk)
                chunk = []
            if self.sent_hours >= self.backlog:
                await self._pace(stopping)
        if chunk and not stopping.is_set():
            await sink.submit(MessageBatch(source=self.name, payloads=chunk, received_ns=time.time_ns()))
            self.sent_messages += len(chunk)
        await sink.drain()
        self.finished.set()

    def stamp(self, index: int) -> int | None:
        """The live clock's timestamp of the ``index``-th hour sent (None with the original clock):
        the backlog just before the start, then one interval apart; never later than when it
        is sent, since the ``index``-th paced hour is not sent before that much time has passed."""
        if not self.live_clock:
            return None
        assert self._t0_ms is not None
        return self._t0_ms + round((index - self.backlog) * self.interval_ms)

    async def _pace(self, stopping: asyncio.Event) -> None:
        """Wait until the next hour is due (or the service stops)."""
        now = time.monotonic()
        if self._paced_from is None:
            self._paced_from = now - (self.sent_hours - self.backlog) / self.hours_per_second
        due = self._paced_from + (self.sent_hours - self.backlog + 1) / self.hours_per_second
        if due > now:
            try:
                await asyncio.wait_for(stopping.wait(), due - now)
            except asyncio.TimeoutError:
                pass
