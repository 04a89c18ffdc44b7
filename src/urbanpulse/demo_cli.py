"""``urbanpulse demo``'s command line: the replay with its summary, or ``--serve`` to stay up."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from urbanpulse.errors import ConfigError

_DESCRIPTION = """\
Replay real Beijing air-quality data (UCI Beijing Multi-Site Air-Quality, 12 stations, hourly
2013-03..2017-02) through the same pipeline as the service, on an embedded PostgreSQL (or
--config's database).

Without --serve: replay as fast as storage takes it, print what was stored and quarantined (by
reason), rollups and alerts, and exit.

With --serve: stay up with the full service and its HTTP API (the web page at /), the stations
registered at their real coordinates, replaying at --speed (by default stamped with the time
each replayed hour is sent: see --clock), with injected incidents (a PM2.5 spike, a stuck PM2.5
sensor, a station going silent) so that the spike, flatline and silence detectors raise alerts
within a minute. Visitors read open data without a key; the operator key
printed at start acknowledges and resolves alerts. On the embedded database the demo's own
database (urbanpulse_demo) is made fresh at every start. Ctrl-C or SIGTERM stops cleanly and
prints the same summary.
"""

_EPILOG = """\
Examples:
  urbanpulse demo                                  replay 3 stations, print the summary
  urbanpulse demo --serve                          serve on http://127.0.0.1:8080/
  urbanpulse demo --serve --speed 600 --loop       slower (10 replayed minutes a second), forever
  urbanpulse demo --serve --port 9000 --host 0.0.0.0

Data: the Beijing files in --datasets (or $URBANPULSE_DATASETS, or a shared/datasets folder
above the current directory); without them, a sample shipped with urbanpulse (the summary: one
station, four years; --serve: all twelve stations, March 2013). Where the stations stand:
urbanpulse/datasets/beijing_stations.yaml, with its source.
Exit status: 0 done (every reading stored or quarantined), 1 readings unaccounted for, 2 bad
option, data or database.
"""

#: options that only mean something with --serve (their defaults are applied there)
_SERVE_ONLY = ("speed", "clock", "backlog", "loop", "no_incidents", "host", "port")


def _positive(value: str) -> float:
    f = float(value)
    if not f > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return f


def station_count(value: str) -> int:
    """--stations as a number of stations, 1 or more: 0 replayed one station and a negative number counted
    from the end, neither what was asked; refused by the parser with a usage message."""
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of stations (1 to 12), got {value!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more stations (the dataset has 12), got {count}")
    return count


def tcp_port(value: str) -> int:
    """--port as a usable TCP port (1-65535), refused by the parser with a usage message otherwise (99999
    ended in an OverflowError traceback from bind())."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number 1-65535, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 1-65535, got {value}")
    return port


def add_demo_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """The ``demo`` sub-command and its options."""
    demo = sub.add_parser("demo", help="replay real Beijing air-quality data; --serve stays up with the web page",
                          description=_DESCRIPTION, epilog=_EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--config", type=Path, metavar="FILE",
                      help="optional configuration (database, detection, ...); with --serve its database must not "
                           "hold the demo's readings yet")
    demo.add_argument("--stations", type=station_count, default=None, metavar="N",
                      help="how many station files (default 3; with --serve 12, at least 3; max 12)")
    demo.add_argument("--hours", type=int, default=None, metavar="H",
                      help="replay only the first H hours of each station (default: all of them: 35,064 in the "
                           "dataset, 744 in the bundled month)")
    demo.add_argument("--datasets", type=Path, default=None, metavar="DIR",
                      help="datasets folder (default: $URBANPULSE_DATASETS or ../shared/datasets)")
    serve = demo.add_argument_group("serving (--serve)")
    serve.add_argument("--serve", action="store_true",
                       help="stay up: the service, its API and page on the replay, until Ctrl-C/SIGTERM")
    serve.add_argument("--speed", type=_positive, default=None, metavar="X",
                       help="replayed time per wall-clock time (default 3600: an hour of readings a second; "
                            "600: ten minutes a second; 1: real time)")
    serve.add_argument("--clock", choices=["live", "original"], default=None,
                       help="live (default): stamp each replayed hour with the time it is sent, so the page, charts "
                            "of the last hour and Grafana's 'now' show the replay as it comes (at 3600x a station "
                            "reports every second, registered so); original: keep the dataset's dates (2013-2017, "
                            "one reading an hour), for looking at the history as it was")
    serve.add_argument("--backlog", type=int, default=None, metavar="H",
                       help="hours replayed at once before pacing starts: history for the charts and warm detectors "
                            "(default 48); the incidents come a few replayed hours after it")
    serve.add_argument("--loop", action="store_true",
                       help="when the replayed hours end, start again from the first with the timestamps moved on by "
                            "the replayed span (readings keep going forward); default: the replay ends and the "
                            "service stays up with what was stored")
    serve.add_argument("--no-incidents", action="store_true",
                       help="replay the data as it is, without the injected spike, stuck sensor and silence")
    serve.add_argument("--host", default=None, metavar="ADDR",
                       help="address to serve on (default: api.host of the configuration, 127.0.0.1)")
    serve.add_argument("--port", type=tcp_port, default=None, metavar="PORT",
                       help="port to serve on (default: api.port of the configuration, 8080)")
    return demo


def run_demo_command(args: argparse.Namespace, settings) -> int:  # noqa: ANN001 - Settings
    """Run ``urbanpulse demo`` as parsed; :class:`ConfigError` for options that do not fit together."""
    if not args.serve:
        given = [f"--{o.replace('_', '-')}" for o in _SERVE_ONLY if getattr(args, o) not in (None, False)]
        if given:
            raise ConfigError(f"{', '.join(given)}: only meaningful with --serve; add --serve, or leave them out")
        from urbanpulse.demo import run_demo

        stations = 3 if args.stations is None else args.stations
        return asyncio.run(run_demo(settings, stations=stations, hours=args.hours, datasets=args.datasets))
    from urbanpulse.demo_serve import ServeOptions, serve_demo

    if args.backlog is not None and args.backlog < 0:
        raise ConfigError(f"--backlog must be 0 or more hours, got {args.backlog}")
    speed = 3600.0 if args.speed is None else args.speed
    clock = args.clock or "live"
    if clock == "live" and speed > 3_600_000:
        raise ConfigError(f"--speed {speed:g} with the live clock would stamp two replayed hours in the same "
                          f"millisecond; use at most 3600000, or --clock original")
    if args.hours is not None and args.hours < 1:
        raise ConfigError(f"--hours must be at least 1, got {args.hours}")
    opts = ServeOptions(stations=12 if args.stations is None else args.stations, hours=args.hours,
                        datasets=args.datasets, speed=speed, clock=clock,
                        backlog=48 if args.backlog is None else args.backlog, loop=args.loop,
                        incidents=not args.no_incidents, host=args.host, port=args.port)
    return asyncio.run(serve_demo(settings, opts))
