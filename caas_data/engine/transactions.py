"""The one transaction policy of the layer, and the one per-process keyed lock.

Every multi-document write runs through `transaction()`:

- inside a running transaction the body joins it and runs once: a transient conflict then
  propagates to whoever started the transaction, whose loop re-runs all of it (re-running
  only the inner body would run it in an already aborted transaction);
- otherwise the body runs in a unit of work, re-run on transient transaction errors with
  jittered backoff, until `max_attempts` or the deadline;
- with `hot_key` (writes that all touch one hot document: a counter, a chain, a group) the
  tasks of this process take turns on `keyed_lock(layer, hot_key)` first, so conflicts (and
  their wasted server work) only come from other processes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

from pymongo.errors import PyMongoError

from caas_data.engine.sessions import current_session
from caas_data.errors import CaasDataError, DocumentValidationError

__all__ = [
    "TRANSACTION_DEADLINE_SECONDS",
    "TransactionRunner",
    "in_transaction",
    "is_transient",
    "keyed_lock",
    "transaction",
]

T = TypeVar("T")

TRANSACTION_DEADLINE_SECONDS = 120.0  # PyMongo's with_transaction uses the same limit
_DEFAULT_ATTEMPTS = 10
# Hot documents see long queues of conflicting writers across processes: there the deadline
# is what bounds the retries.
_HOT_ATTEMPTS = 10_000


class TransactionRunner(Protocol):
    """What the policy needs of the layer: a unit of work (one transaction) to run a body in."""

    def unit_of_work(self, *, cluster: str | None = None) -> AbstractAsyncContextManager[Any]:
        """A context manager running its block in one transaction."""
        ...


def in_transaction() -> bool:
    """Whether the running task is inside a transaction (the ambient session's)."""
    session = current_session()
    return session is not None and session.in_transaction


def is_transient(error: BaseException) -> bool:
    """Whether the server labelled `error` a transient transaction error (re-run it)."""
    driver = error.driver_error if isinstance(error, CaasDataError) else error
    return isinstance(driver, PyMongoError) and driver.has_error_label("TransientTransactionError")


class _KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it (bounded memory)."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


_locks = _KeyedLocks()


def keyed_lock(layer: object, key: Hashable) -> AbstractAsyncContextManager[None]:
    """A lock for `key` among the tasks of this process using `layer`.

    Only a throttle for writes that would conflict anyway (the database still decides
    between processes). Never take it while holding another one: `transaction()` takes it
    only outside transactions.
    """
    return _locks.hold((id(layer), key))


async def transaction(
    layer: TransactionRunner,
    body: Callable[[], Awaitable[T]],
    *,
    hot_key: Hashable | None = None,
    max_attempts: int | None = None,
    cluster: str | None = None,
) -> T:
    """Run `body` in one transaction, joining a running one (see the module docstring).

    `cluster` names where a new transaction runs (the running tenant's cluster by default;
    `HOME_CLUSTER` for the platform's rows).

    Raises:
        DocumentValidationError: `max_attempts` is below 1 (also a ValueError).
        RetryableError: still conflicting after `max_attempts` or the deadline.
    """
    if max_attempts is not None and max_attempts < 1:
        raise DocumentValidationError(
            f"max_attempts must be at least 1, got {max_attempts!r}", fields=("max_attempts",)
        )
    if in_transaction():
        return await body()
    if hot_key is None:
        return await _run(layer, body, max_attempts or _DEFAULT_ATTEMPTS, cluster)
    async with keyed_lock(layer, hot_key):
        return await _run(layer, body, max_attempts or _HOT_ATTEMPTS, cluster)


async def _run(
    layer: TransactionRunner,
    body: Callable[[], Awaitable[T]],
    attempts: int,
    cluster: str | None,
) -> T:
    deadline = time.monotonic() + TRANSACTION_DEADLINE_SECONDS
    for attempt in range(1, attempts + 1):
        try:
            async with layer.unit_of_work(cluster=cluster):
                return await body()
        except CaasDataError as exc:
            if not is_transient(exc) or attempt == attempts or time.monotonic() > deadline:
                raise
        # Equal jitter: the losers of one round do not retry in lockstep.
        cap = min(0.5, 0.005 * 2 ** min(attempt, 7))
        await asyncio.sleep(cap / 2 + random.uniform(0, cap / 2))
    raise AssertionError("unreachable")  # pragma: no cover
