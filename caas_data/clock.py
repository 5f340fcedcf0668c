"""The clock of the layer: now in BSON precision, and the time the guard stamps on a write.

An instance method that lets Beanie send the write (which the guard then stamps) needs to know
the `updated_at` that was stored, to keep the object in memory equal to the stored document.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

__all__ = ["stamped", "utcnow", "write_stamp"]

_stamp: ContextVar[datetime | None] = ContextVar("caas_data_write_stamp", default=None)


def utcnow() -> datetime:
    """Now, timezone-aware UTC, at the millisecond precision BSON stores."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def write_stamp() -> datetime:
    """The time to stamp on the write being guarded: the one set by `stamped`, else now."""
    return _stamp.get() or utcnow()


@contextmanager
def stamped(now: datetime) -> Iterator[datetime]:
    """Writes guarded inside the block are stamped with `now`."""
    token = _stamp.set(now)
    try:
        yield now
    finally:
        _stamp.reset(token)
