"""The embedded server never outlives the process that started it, however that one ends.

Each case starts a child interpreter that starts the server through the public helper and
prints its pid, ends the child one way, and checks the server is gone within seconds.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parents[2]
GONE_WITHIN_S = 15.0  # the watchdog polls, then gives the server its SIGTERM grace

CHILD = r"""
import signal, sys
from caas_data.testing import start_test_server

if sys.argv[1] == "own-handler":
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(3))
server = start_test_server()
print(server.pid, flush=True)
sys.stdin.read()  # until the test closes our stdin (a normal exit) or signals us
"""


def _running(pid: int) -> bool:
    """Exists and is not a zombie (a reparented zombie waits for init, but runs nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != b"Z"


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _running(pid):
            return True
        time.sleep(0.1)
    return not _running(pid)


class Child:
    def __init__(self, case: str, stderr: IO[bytes]) -> None:
        env = {k: v for k, v in os.environ.items() if k != "CAAS_MONGODB_URI"}
        env["CAAS_TEST_SERVER"] = "embedded"
        self.stderr = stderr
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, case],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        self.server_pid: int | None = None

    def read_server_pid(self, timeout: float = 120.0) -> int:
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else b""
        assert line.strip().isdigit(), f"no server pid from the child: {self.errors()}"
        self.server_pid = int(line)
        return self.server_pid

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-3000:]

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        if self.server_pid is not None and _running(self.server_pid):
            os.kill(self.server_pid, signal.SIGKILL)  # never leave one behind, even on failure


@pytest.fixture
def child(request: pytest.FixtureRequest) -> Iterator[Child]:
    with tempfile.TemporaryFile() as stderr:
        started = Child(request.param, stderr)
        try:
            yield started
        finally:
            started.cleanup()


@pytest.mark.parametrize(
    ("child", "end", "exit_code"),
    [
        ("plain", "exit", 0),
        ("plain", signal.SIGTERM, -signal.SIGTERM),
        ("plain", signal.SIGHUP, -signal.SIGHUP),
        ("plain", signal.SIGKILL, -signal.SIGKILL),
        # The application's own SIGTERM handler still decides; its exit runs atexit.
        ("own-handler", signal.SIGTERM, 3),
    ],
    indirect=["child"],
    ids=["normal-exit", "sigterm", "sighup", "sigkill", "sigterm-own-handler"],
)
def test_the_server_stops_when_its_parent_ends(
    child: Child, end: str | signal.Signals, exit_code: int
) -> None:
    server_pid = child.read_server_pid()
    assert _running(server_pid)

    if end == "exit":
        assert child.process.stdin is not None
        child.process.stdin.close()
    else:
        assert isinstance(end, signal.Signals)
        child.process.send_signal(end)
    assert child.process.wait(timeout=60) == exit_code, child.errors()

    assert _gone_within(server_pid, GONE_WITHIN_S), f"server {server_pid} outlived its parent"
