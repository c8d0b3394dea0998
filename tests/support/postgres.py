"""A real PostgreSQL server for the tests, started and stopped by the test run itself.

No Docker: the server's own binaries (Debian's ``postgresql-NN`` package puts them in
``/usr/lib/postgresql/NN/bin``) run ``initdb`` and ``postgres`` on a data directory and a
socket directory under a fresh temporary directory, listening on a free port on
127.0.0.1 only, with durability off (a test database need not survive a crash).

``initdb`` and ``postgres`` refuse to run as root, and CI runs as root: then both run as
the ``postgres`` system user (``runuser -u postgres --``), which owns the temporary
directory. When the binaries are missing and we are root on a machine with ``apt-get``
(a fresh CI machine), :func:`find_bin_dir` installs Debian's ``postgresql`` package
first. Where none of this is possible, :func:`shared_server` raises
:class:`PostgresUnavailable` with the reason, and the PostgreSQL tests skip with it.

One server serves the whole test session (:func:`shared_server`); each test gets its own
database (:meth:`PostgresServer.new_database`). :func:`stop_shared_server` stops it; the
session's ``pytest_sessionfinish`` calls it, and ``atexit`` does if nothing else did.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from support.apt import apt_install

#: Set to a directory holding ``initdb`` and ``postgres`` to use other binaries.
BIN_DIR_ENV = "PUSHPOOL_TEST_PG_BIN"
_APT_TIMEOUT = 600
_START_TIMEOUT = 60


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why."""


def _is_root() -> bool:
    return os.geteuid() == 0


def _candidates() -> list[Path]:
    found = []
    if os.environ.get(BIN_DIR_ENV):
        found.append(Path(os.environ[BIN_DIR_ENV]))
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    found += debian
    on_path = shutil.which("initdb")
    if on_path:
        found.append(Path(on_path).parent)
    return [d for d in found if (d / "initdb").exists() and (d / "postgres").exists()]


def find_bin_dir() -> Path:
    """The directory of ``initdb`` and ``postgres``, installing them if we may."""
    found = _candidates()
    if found:
        return found[0]
    if not (_is_root() and shutil.which("apt-get")):
        raise PostgresUnavailable(
            "no PostgreSQL server binaries (initdb, postgres) on this machine; install "
            "Debian's `postgresql` package or set " + BIN_DIR_ENV
        )
    failure = apt_install("postgresql", _APT_TIMEOUT)
    found = _candidates()
    if not found:
        raise PostgresUnavailable(
            f"no PostgreSQL server binaries, and installing them did not work: {failure}"
        )
    return found[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgresServer:
    """One ``postgres`` process on 127.0.0.1, owned by this test run."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="pushpool-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _as_owner(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if _is_root() else argv

    def start(self) -> None:
        self.sockets.mkdir()
        if _is_root():
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")
        initdb = [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres"]
        initdb += ["--auth=trust", "--encoding=UTF8", "--no-sync", "--locale=C"]
        done = subprocess.run(self._as_owner(initdb), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.sockets),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
            "shared_buffers": "64MB",
        }
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the server keeps it
        self.process = subprocess.Popen(
            self._as_owner(argv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = (self.root / "server.log").read_text(errors="replace")[-500:]
                raise PostgresUnavailable(f"postgres exited at start: {tail}")
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable("postgres did not accept connections") from None
                time.sleep(0.1)

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` (psycopg 3)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, template: str | None = None) -> str:
        """Create an empty database (or a copy of the database named ``template``, which
        must have no connections); return its SQLAlchemy URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        copy = f' TEMPLATE "{template}"' if template else ""
        with self._lock, psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # SIGINT: "fast shutdown" (disconnect clients, stop). The server runs as
            # postgres under runuser; signal the postgres process group we started.
            try:
                os.killpg(self.process.pid, 2)
                self.process.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


_shared: PostgresServer | None = None
_shared_error: PostgresUnavailable | None = None
_shared_lock = threading.Lock()


def shared_server() -> PostgresServer:
    """The session's server, started on first use. Raises :class:`PostgresUnavailable`
    (the same one every time) when no server can be started here."""
    global _shared, _shared_error
    with _shared_lock:
        if _shared is not None:
            return _shared
        if _shared_error is not None:
            raise _shared_error
        try:
            server = PostgresServer(find_bin_dir())
            try:
                server.start()
            except BaseException:
                server.stop()
                raise
        except PostgresUnavailable as exc:
            _shared_error = exc
            raise
        _shared = server
        atexit.register(stop_shared_server)
        return server


def stop_shared_server() -> None:
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.stop()
            _shared = None
