"""Stop the embedded server when the process that started it dies, however it dies.

`TestServer` runs this file (standard library only, never imported as part of the package)
as ``python -I _watchdog.py <server pid>`` right after starting the server, with standard
input a pipe whose write end only the owner holds. The owner writes ``s`` ("stand down")
before it stops the server itself. End of file without it means the owner is gone: the
kernel closes a dead process's descriptors whatever killed it, SIGKILL included. The
watchdog then stops the server (SIGTERM, then SIGKILL after a grace period) and exits.
"""

from __future__ import annotations

import os
import signal
import sys
import time

STAND_DOWN = b"s"
GRACE_S = 10.0
POLL_S = 0.05


def _start_time(pid: int) -> bytes | None:
    """The process's start time from /proc (Linux), to never signal a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 else None


def _running(pid: int, started: bytes | None) -> bool:
    """Whether the server still runs: exists, not a zombie, and is the same process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return True  # no /proc (not Linux): os.kill said it exists
    return fields[0] != b"Z" and (started is None or fields[19] == started)


def _stop(pid: int, started: bytes | None) -> None:
    """SIGTERM (the server cleans up), then SIGKILL if it is still there after the grace."""
    for sig, wait in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, GRACE_S)):
        if not _running(pid, started):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _running(pid, started):
            time.sleep(POLL_S)


def main(argv: list[str]) -> int:
    """Wait for the owner's word or its death; on death, stop the server."""
    pid = int(argv[1])
    started = _start_time(pid)
    # Ctrl-C or a hang-up reaches the whole process group: the owner decides what they
    # mean, and this process must outlive the owner to clean up after it.
    for name in ("SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    word = os.read(0, 1)
    if word != STAND_DOWN:
        _stop(pid, started)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
