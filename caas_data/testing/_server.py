"""Pick and run the MongoDB-compatible server used by tests, the demo and the examples.

The library's own ``connect()`` never uses this module: production code always gets an
explicit URI. This module only answers "which server do I test against?", in this order:

1. ``CAAS_MONGODB_URI`` is set: use it as is and start nothing (CI with a real cluster,
   ``docker compose up``, a developer's own server).
2. A Docker engine answers: start ``mongo:8.0`` through testcontainers as a single-node
   replica set, so transactions and change streams behave as in production.
3. Otherwise: start the embedded SecantusDB server (``pip install 'caas-data[embedded]'``)
   as a child process. SecantusDB is GPL-licensed, so it is only ever run as a separate
   program and never imported.

``CAAS_TEST_SERVER`` (``auto``, ``testcontainers`` or ``embedded``) skips the probing when
a particular backend is wanted, e.g. to force the embedded server on a Docker host.

A started server never outlives the process that started it (a CI timeout once left one
spinning): ``stop()`` runs at normal exit (atexit); SIGTERM and SIGHUP, when they would
otherwise kill the process outright, first stop the servers and then end the process by the
same signal; and a watchdog process (``_watchdog.py``) stops the embedded server when its
owner dies in any other way, SIGKILL included.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from caas_data.errors import MissingDependencyError, optional_dependency

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

__all__ = [
    "ENV_EMBEDDED_ARGS",
    "ENV_SERVER_KIND",
    "ENV_URI",
    "MONGO_IMAGE",
    "RestartableServer",
    "ServerHandle",
    "TestServer",
    "start_test_server",
]

ENV_URI = "CAAS_MONGODB_URI"
ENV_EMBEDDED_ARGS = "CAAS_EMBEDDED_ARGS"
ENV_SERVER_KIND = "CAAS_TEST_SERVER"
MONGO_IMAGE = "mongo:8.0"

_EMBEDDED_EXE = "secantusd-py"
_EMBEDDED_VERSION = "0.7.0b3"
_REPLICA_SET = "rs0"
_DOCKER_PROBE_TIMEOUT_S = 5.0
_PORT_IN_USE_RETRIES = 3
_EMBEDDED_MAX_IDLE_MS = 240_000  # the embedded server closes connections idle for 300 s
_WATCHDOG = Path(__file__).with_name("_watchdog.py")
_WATCHDOG_STAND_DOWN = b"s"
# Signals whose default action kills the process without running atexit. SIGINT is not
# here: Python turns it into KeyboardInterrupt, and the exit that follows runs atexit.
_FATAL_SIGNALS = ("SIGTERM", "SIGHUP")


@dataclass(frozen=True)
class ServerHandle:
    """Where the chosen test server listens, so callers need not know how it was started.

    Attributes:
        uri: MongoDB connection string to pass to ``connect()`` or ``MongoClient``.
        kind: ``"env"``, ``"testcontainers"`` or ``"embedded"``.
        description: One line for humans (logs, pytest header, demo output).
    """

    uri: str
    kind: str
    description: str


class TestServer:
    """Start, hold and stop one test server; stopping is idempotent and also runs at exit.

    Usable as ``server.start()`` / ``server.stop()`` or as ``with TestServer() as handle:``.
    """

    __test__ = False  # the name starts with "Test": keep pytest from collecting it

    def __init__(self, *, startup_timeout: float = 60.0) -> None:
        """Prepare without starting, so construction never has side effects.

        Args:
            startup_timeout: Seconds to wait for a started server to accept commands.
        """
        self._startup_timeout = startup_timeout
        self._handle: ServerHandle | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._container: DockerContainer | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._owner_pid = os.getpid()

    @property
    def handle(self) -> ServerHandle:
        """The running server's handle; raises if ``start()`` has not succeeded."""
        if self._handle is None:
            raise RuntimeError("TestServer is not started; call start() first")
        return self._handle

    @property
    def pid(self) -> int | None:
        """Process id of the embedded server; None for other kinds or when stopped."""
        return None if self._process is None else self._process.pid

    @property
    def started(self) -> bool:
        """Whether a server is currently held (or an external one is in use)."""
        return self._handle is not None

    def start(self) -> ServerHandle:
        """Choose a backend and start it, or return the handle if already started."""
        if self._handle is not None:
            return self._handle
        env_uri = os.environ.get(ENV_URI, "").strip()
        if env_uri:
            self._handle = ServerHandle(
                uri=env_uri,
                kind="env",
                description=f"external server from ${ENV_URI} (not started by caas_data)",
            )
            return self._handle
        wanted = os.environ.get(ENV_SERVER_KIND, "auto").strip().lower() or "auto"
        if wanted not in ("auto", "testcontainers", "embedded"):
            raise RuntimeError(
                f"${ENV_SERVER_KIND}={wanted!r}: expected 'auto', 'testcontainers' or 'embedded'"
            )
        self._stop_with_this_process()
        try:
            if wanted == "testcontainers" or (
                wanted == "auto" and _testcontainers_installed() and _docker_engine_available()
            ):
                self._handle = self._start_container()
            else:
                self._handle = self._start_embedded()
        except BaseException:
            self._log_path = None  # keep the log: the error message points at it
            self.stop()
            raise
        return self._handle

    def stop(self) -> None:
        """Stop whatever this object started; safe to call repeatedly and at exit."""
        atexit.unregister(self.stop)
        _started.discard(self)
        self._handle = None
        # Stand the watchdog down first: once the server is reaped its pid may be reused.
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            _stand_down(watchdog)
        process, self._process = self._process, None
        if process is not None:
            _terminate(process)
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(Exception):  # best effort during teardown
                container.stop()
        log_path, self._log_path = self._log_path, None
        if log_path is not None:
            log_path.unlink(missing_ok=True)

    def _stop_with_this_process(self) -> None:
        """Make sure what `start()` is about to start ends when this process ends."""
        atexit.register(self.stop)
        self._owner_pid = os.getpid()
        _install_signal_handlers()
        _started.add(self)

    def __enter__(self) -> ServerHandle:
        """Start the server for the duration of a ``with`` block."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server even if the block raised."""
        self.stop()

    def _start_container(self) -> ServerHandle:
        """Run mongo:8.0 as a single-node replica set, for transactions and change streams."""
        # Imported here: testcontainers is a test-only extra and pulls in the docker SDK.
        # testcontainers>=4.15 home; the old ``testcontainers.mongodb`` warns on import.
        with optional_dependency(
            "testcontainers", extra="test", feature=f"{ENV_SERVER_KIND}=testcontainers"
        ):
            from testcontainers.community.mongodb import MongoDbContainer

        class _ReplicaSetMongo(MongoDbContainer):
            """No root user: mongod refuses --auth with --replSet unless given a keyFile."""

            def _configure(self) -> None:
                pass

        container = _ReplicaSetMongo(MONGO_IMAGE)
        container.with_command(f"--replSet {_REPLICA_SET} --bind_ip_all")
        self._container = container
        container.start()
        host = container.get_container_host_ip()
        port = container.get_exposed_port(27017)
        uri = f"mongodb://{host}:{port}/?directConnection=true"
        client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
        try:
            client.admin.command(
                "replSetInitiate",
                {"_id": _REPLICA_SET, "members": [{"_id": 0, "host": "localhost:27017"}]},
            )
            deadline = time.monotonic() + self._startup_timeout
            while not client.admin.command("hello").get("isWritablePrimary"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{MONGO_IMAGE} did not become replica-set primary")
                time.sleep(0.2)
        finally:
            client.close()
        return ServerHandle(
            uri=uri,
            kind="testcontainers",
            description=f"MongoDB {MONGO_IMAGE} (testcontainers, replica set {_REPLICA_SET}) "
            f"on {host}:{port}",
        )

    def _start_embedded(self) -> ServerHandle:
        """Run SecantusDB in memory on a free loopback port, retrying if the port was taken."""
        exe = _find_embedded_executable()
        extra = shlex.split(os.environ.get(ENV_EMBEDDED_ARGS, ""))
        for attempt in range(1, _PORT_IN_USE_RETRIES + 1):
            port = _free_loopback_port()
            # retryWrites=false: SecantusDB slows down ~9x after ~10k retryable writes.
            # connectTimeoutMS: the driver's monitor times its checks with it; a check that
            # times out (a busy machine pausing the server) cancels every operation in flight.
            # maxIdleTimeMS: the server closes a connection idle for 300 s; the pool must drop
            # it first (a benchmark's baseline client, idle through the tenancy figures on a
            # slow host, failed its clean-up on a closed connection).
            uri = (
                f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false"
                f"&connectTimeoutMS=60000&maxIdleTimeMS={_EMBEDDED_MAX_IDLE_MS}"
            )
            fd, log_name = tempfile.mkstemp(prefix="caas-secantusd-", suffix=".log")
            self._log_path = Path(log_name)
            cmd = [exe, "--host", "127.0.0.1", "--port", str(port), "--storage-path", ":memory:"]
            with os.fdopen(fd, "wb") as log:
                self._process = subprocess.Popen(
                    [*cmd, *extra],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            self._watchdog = _start_watchdog(self._process.pid)
            try:
                self._wait_for_ping(uri)
            except _EarlyExit as err:
                if attempt < _PORT_IN_USE_RETRIES and "in use" in err.log_tail.lower():
                    self.stop()
                    self._stop_with_this_process()
                    continue
                raise RuntimeError(str(err)) from None
            return ServerHandle(
                uri=uri,
                kind="embedded",
                description=f"SecantusDB {_EMBEDDED_VERSION} (embedded) on 127.0.0.1:{port}",
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_for_ping(self, uri: str) -> None:
        """Block until the child answers ``ping``, failing fast if it dies."""
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self._startup_timeout
        client: MongoClient[dict[str, Any]] = MongoClient(
            uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500
        )
        try:
            while True:
                code = process.poll()
                if code is not None:
                    raise _EarlyExit(
                        f"{_EMBEDDED_EXE} exited with code {code} before accepting connections; "
                        f"log {self._log_path}:\n{self._log_tail()}",
                        self._log_tail(),
                    )
                try:
                    client.admin.command("ping")
                    return
                except PyMongoError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{_EMBEDDED_EXE} did not answer ping within {self._startup_timeout:.0f}s; "
                        f"log {self._log_path}:\n{self._log_tail()}"
                    )
                time.sleep(0.1)
        finally:
            client.close()

    def _log_tail(self, lines: int = 40) -> str:
        """Last lines of the server log, for error messages."""
        if self._log_path is None:
            return ""
        try:
            text = self._log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class RestartableServer:
    """An embedded server on its own on-disk storage and fixed port, to stop and start again.

    For fault suites: `stop(signal.SIGKILL)` kills it mid-workload, `start()` brings it back on
    the same storage and port, so a connected layer reconnects by itself. Test commands
    (`configureFailPoint`) are on; `--sync-on-commit` (fsync of the log on every commit) is on
    by default so a commit acknowledged before a SIGKILL is on disk, as `j: true` on MongoDB.
    """

    def __init__(
        self,
        storage_path: Path,
        *,
        sync_on_commit: bool = True,
        startup_timeout: float = 60.0,
    ) -> None:
        self.storage_path = Path(storage_path)
        self.port = _free_loopback_port()
        self.uri = (
            f"mongodb://127.0.0.1:{self.port}/?directConnection=true&retryWrites=false"
            f"&connectTimeoutMS=2000&maxIdleTimeMS={_EMBEDDED_MAX_IDLE_MS}"
        )
        self._args = ["--enable-test-commands"] + (["--sync-on-commit"] if sync_on_commit else [])
        self._helper = TestServer(startup_timeout=startup_timeout)

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._helper.pid

    @property
    def log_path(self) -> Path:
        """Where the server writes its log (kept across restarts)."""
        return self.storage_path.with_suffix(".log")

    def start(self) -> None:
        """Start the server (again) on the same storage and port; returns once it answers."""
        helper = self._helper
        if helper._process is not None:
            return
        self.storage_path.mkdir(parents=True, exist_ok=True)
        cmd = [
            _find_embedded_executable(),
            "--host", "127.0.0.1", "--port", str(self.port),
            "--storage-path", str(self.storage_path), *self._args,
        ]  # fmt: skip
        helper._stop_with_this_process()
        helper._log_path = None  # the log is ours: TestServer.stop() must not delete it
        with open(self.log_path, "ab") as log:
            helper._process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        helper._watchdog = _start_watchdog(helper._process.pid)
        helper._log_path = self.log_path
        try:
            helper._wait_for_ping(self.uri)
        finally:
            helper._log_path = None

    def stop(self, how: signal.Signals = signal.SIGTERM, *, timeout: float = 30.0) -> int:
        """Stop the server by `how` (SIGTERM: clean shutdown, SIGKILL: a crash); its exit code."""
        helper = self._helper
        process, watchdog = helper._process, helper._watchdog
        if process is None:
            return 0
        helper._process = helper._watchdog = None
        if watchdog is not None:
            _stand_down(watchdog)
        process.send_signal(how)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait(timeout=timeout)
        atexit.unregister(helper.stop)
        _started.discard(helper)
        return code

    def close(self) -> None:
        """Stop for good; the storage stays for the caller to remove."""
        self.stop()


class _EarlyExit(RuntimeError):
    """The embedded server exited during startup; carries the log tail for retry decisions."""

    def __init__(self, message: str, log_tail: str) -> None:
        super().__init__(message)
        self.log_tail = log_tail


# Servers started and not yet stopped; a signal handler stops those of this process.
_started: set[TestServer] = set()
_handlers_lock = threading.Lock()
_handlers_installed = False


def _install_signal_handlers() -> None:
    """Stop the servers before a fatal signal ends the process; once, from the main thread.

    Only a signal still at its default action (which would kill the process without running
    atexit) gets a handler. A handler the application or pytest installed is left alone: it
    decides whether the process ends, and if it ends by exiting, atexit stops the servers.
    An ignored signal stays ignored (e.g. SIGHUP under nohup).
    """
    global _handlers_installed
    if threading.current_thread() is not threading.main_thread():
        return  # signal.signal() works only there; the watchdog still covers this process
    with _handlers_lock:
        if _handlers_installed:
            return
        _handlers_installed = True
        for name in _FATAL_SIGNALS:
            signum = getattr(signal, name, None)  # SIGHUP does not exist on Windows
            if signum is not None and signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _stop_servers_then_die)


def _stop_servers_then_die(signum: int, frame: FrameType | None) -> None:
    """Stop this process's servers, then end the process by the same signal (exit 128+n)."""
    for server in list(_started):
        # A child forked after start() inherits the set, not the servers: leave them alone.
        if server._owner_pid == os.getpid():
            with contextlib.suppress(Exception):  # best effort: the process is ending anyway
                server.stop()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)
    os._exit(128 + signum)  # pragma: no cover - only if the default action did not end us


def _start_watchdog(server_pid: int) -> subprocess.Popen[bytes]:
    """Start the process that stops the server if this one dies without stopping it."""
    # -I: the standard library only, untouched by PYTHON* variables and the current folder.
    return subprocess.Popen(
        [sys.executable, "-I", str(_WATCHDOG), str(server_pid)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stand_down(watchdog: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Tell the watchdog the owner stops the server itself, and reap it."""
    if watchdog.stdin is not None:
        with contextlib.suppress(OSError):  # it may already be gone: nothing to tell
            watchdog.stdin.write(_WATCHDOG_STAND_DOWN)
            watchdog.stdin.flush()
        with contextlib.suppress(OSError):
            watchdog.stdin.close()
    try:
        watchdog.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait(timeout=timeout)


def start_test_server(*, startup_timeout: float = 60.0) -> TestServer:
    """Return a started ``TestServer``; call ``.stop()`` on it (it also stops at exit)."""
    server = TestServer(startup_timeout=startup_timeout)
    server.start()
    return server


def _testcontainers_installed() -> bool:
    """Whether testcontainers can be imported: without it, "auto" falls back to embedded."""
    return importlib.util.find_spec("testcontainers") is not None


def _docker_engine_available() -> bool:
    """Ask the Docker CLI whether an engine answers; never hangs, never raises."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_DOCKER_PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


def _find_embedded_executable() -> str:
    """Prefer the launcher installed beside this interpreter, so the venv's copy wins."""
    beside = Path(sys.executable).parent / _EMBEDDED_EXE
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(_EMBEDDED_EXE)
    if found is not None:
        return found
    raise MissingDependencyError(
        "secantusdb",
        extra="embedded",
        feature=f"the embedded test server ({_EMBEDDED_EXE})",
        hint=f"or set {ENV_URI} to a running MongoDB, or run a Docker engine with caas-data[test]",
    )


def _free_loopback_port() -> int:
    """Let the OS pick an unused port; the tiny race is handled by the caller's retry."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _terminate(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL: the server gets a chance to clean its temp dir."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)
