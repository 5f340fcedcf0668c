"""A one-document write, run again when the server reports a write conflict.

Outside a transaction a `WriteConflict` (112) means the statement was rolled back and nothing
was written: mongod retries it itself and never reports it, but the embedded server can.
Inside a transaction it aborts the transaction: that is the unit of work's to retry, so it is
raised.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo.errors import OperationFailure

__all__ = ["after_write_conflict", "retry_write_conflicts"]

T = TypeVar("T")
_WRITE_CONFLICT = 112
_CONFLICT_RETRIES = 8


async def retry_write_conflicts(write: Callable[[], Awaitable[T]], session: Any) -> T:
    """`await write()`, again (jittered backoff) after a write conflict outside a transaction."""
    try:
        return await write()
    except OperationFailure as exc:
        return await after_write_conflict(exc, write, session)


async def after_write_conflict(
    error: OperationFailure, write: Callable[[], Awaitable[T]], session: Any
) -> T:
    """The rest of `retry_write_conflicts` once a first `write()` failed with `error`.

    Raises `error` unless it is a write conflict outside a transaction. The hot writes await
    their first attempt themselves: one coroutine fewer per write (issue 16).
    """
    for attempt in itertools.count():
        in_transaction = session is not None and session.in_transaction
        if error.code != _WRITE_CONFLICT or in_transaction or attempt >= _CONFLICT_RETRIES:
            raise error
        await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
        try:
            return await write()
        except OperationFailure as exc:
            error = exc
    raise AssertionError("unreachable")  # pragma: no cover
