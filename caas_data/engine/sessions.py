"""The ambient transaction session.

Repository and Beanie calls inside `unit_of_work()` join it without passing `session=`.
"""

from __future__ import annotations

from contextvars import ContextVar

from pymongo.asynchronous.client_session import AsyncClientSession

__all__ = ["current_session", "session_var"]

session_var: ContextVar[AsyncClientSession | None] = ContextVar("caas_data_session", default=None)


def current_session() -> AsyncClientSession | None:
    """The session of the running unit of work, if any."""
    return session_var.get()
