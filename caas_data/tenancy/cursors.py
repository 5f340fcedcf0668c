"""`GuardedCursor`: the cursors the guard hands out serve only their scope and never raise raw.

A driver cursor fetches its batches lazily, long after `find()` returned: its errors would
escape the guard's error translation, and a cursor kept past its scope would go on reading
the tenant it was opened for. This wrapper checks the running scope and translates driver
errors on every fetch. Like the guard, it knows the cursor's methods one by one and refuses
the rest.

With field encryption it also decrypts what it returns (`transform`), and a find whose filter
must first be encrypted (an async step) is opened at its first fetch (`opener`): until then
the shaping calls are recorded and replayed on the driver's cursor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Self

from caas_data.errors import UnsafeOperation

__all__ = ["GuardedCursor"]

# Methods that only shape the query before the first fetch; they return the cursor itself.
_SHAPING = frozenset(
    {
        "sort", "limit", "skip", "batch_size", "hint", "collation", "max_time_ms", "comment",
        "allow_disk_use", "max_await_time_ms",
    }
)  # fmt: skip
_SAFE_ATTRIBUTES = frozenset({"alive", "resume_token", "cursor_id", "address"})


class GuardedCursor:
    """A find, aggregate or change-stream cursor bound to the scope it was opened in."""

    __slots__ = ("_check", "_cursor", "_errors", "_opener", "_shaping", "_transform")

    def __init__(
        self,
        cursor: Any,
        *,
        check: Callable[[], None],
        errors: Callable[[], AbstractContextManager[None]],
        transform: Callable[[Any], Awaitable[Any]] | None = None,
        opener: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self._cursor = cursor
        self._check = check
        self._errors = errors
        self._transform = transform
        self._opener = opener
        self._shaping: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        if name in _SHAPING:

            def shape(*args: Any, **kwargs: Any) -> GuardedCursor:
                if self._cursor is None:
                    self._shaping.append((name, args, kwargs))
                else:
                    getattr(self._cursor, name)(*args, **kwargs)
                return self

            return shape
        if name in _SAFE_ATTRIBUTES:
            if self._cursor is None:  # not opened yet: nothing fetched, still alive
                return name == "alive" or None
            return getattr(self._cursor, name)
        raise UnsafeOperation(f"cursor method {name!r} is not known to the tenant guard; refused")

    def __repr__(self) -> str:
        return f"GuardedCursor({type(self._cursor).__name__})"

    async def _open(self) -> Any:
        if self._cursor is None:
            assert self._opener is not None
            cursor = await self._opener()
            for name, args, kwargs in self._shaping:
                getattr(cursor, name)(*args, **kwargs)
            self._cursor, self._shaping = cursor, []
        return self._cursor

    async def _out(self, document: Any) -> Any:
        return document if self._transform is None else await self._transform(document)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        self._check()
        with self._errors():
            cursor = await self._open()
            return await self._out(await cursor.__anext__())

    async def next(self) -> Any:
        """The next document (`StopAsyncIteration` at the end)."""
        return await self.__anext__()

    async def try_next(self) -> Any:
        """A change stream's next event, or None when there is none yet."""
        self._check()
        with self._errors():
            event = await (await self._open()).try_next()
            return None if event is None else await self._out(event)

    async def to_list(self, length: int | None = None) -> list[Any]:
        """The remaining documents (at most `length`)."""
        self._check()
        with self._errors():
            documents: list[Any] = await (await self._open()).to_list(length)
            if self._transform is None:
                return documents  # a coroutine per document costs more than nothing
            return [await self._transform(document) for document in documents]

    async def explain(self) -> Any:
        """The server's plan for this find (the filter it shows is the guarded one)."""
        self._check()
        with self._errors():
            return await (await self._open()).explain()

    async def close(self) -> None:
        """Close the cursor on the server."""
        if self._cursor is None:
            return
        with self._errors():
            await self._cursor.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
