"""The ambient transaction session and the ambient write-concern override.

Repository and Beanie calls inside `unit_of_work()` join it without passing `session=`;
writes inside `write_concern(...)` use that write concern instead of the layer's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.write_concern import WriteConcern

from caas_data.errors import ConfigurationError

__all__ = ["current_session", "current_write_concern", "session_var", "write_concern"]

session_var: ContextVar[AsyncClientSession | None] = ContextVar("caas_data_session", default=None)
_write_concern_var: ContextVar[WriteConcern | None] = ContextVar(
    "caas_data_write_concern", default=None
)


def current_session() -> AsyncClientSession | None:
    """The session of the running unit of work, if any."""
    return session_var.get()


def current_write_concern() -> WriteConcern | None:
    """The write concern `write_concern()` set for the running task, if any."""
    return _write_concern_var.get()


@contextmanager
def write_concern(concern: WriteConcern) -> Iterator[WriteConcern]:
    """Run the block's writes with `concern` instead of the layer's (`w: majority`).

    For writes nobody is told about (a cache, a rollup that is re-run anyway) where `w: 1`
    is enough. Inside a transaction the transaction's own write concern applies (pass it to
    `unit_of_work(write_concern=...)`).
    """
    if not isinstance(concern, WriteConcern):
        raise ConfigurationError("write_concern() takes a pymongo.WriteConcern")
    token = _write_concern_var.set(concern)
    try:
        yield concern
    finally:
        _write_concern_var.reset(token)
