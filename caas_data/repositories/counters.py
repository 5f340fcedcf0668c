"""Sequence allocation on named counters, shared by every domain that numbers things."""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime
from typing import Any, TypeVar

from pymongo import ReturnDocument

from caas_data.documents.counters import Counter, OwnedCounter
from caas_data.errors import DocumentValidationError, DuplicateError, RepositoryError
from caas_data.repositories.base import Repository, check_int

__all__ = ["CounterRepository", "OwnedCounterRepository", "SequenceRepository"]

C = TypeVar("C", Counter, OwnedCounter)


class SequenceRepository(Repository[C]):
    """Atomic `$inc` on one document per key: no gaps, no duplicates, under any concurrency.

    Inside a unit of work the allocation joins the transaction, so an aborted transaction
    gives its numbers back (invoice numbers stay gap-free).
    """

    async def allocate(self, key: str, count: int = 1) -> int:
        """Reserve `count` consecutive numbers for `key`; returns the last one (from 1)."""
        check_int("count", count, minimum=1)
        if not key:
            raise DocumentValidationError("a counter needs a key", fields=("key",))
        # Counters are protected fields: only this method moves them.
        collection = self.collection()._privileged()
        for _ in range(5):
            # No upsert: racing first upserts can apply an increment and still answer
            # nothing (seen on the embedded server), and asking again would leave a gap. The
            # counter is created on its own below; the increment only ever hits a stored one.
            raw: dict[str, Any] | None = await collection.find_one_and_update(
                {"key": key},
                {"$inc": {"value": count}},
                return_document=ReturnDocument.AFTER,
            )
            if raw is not None:
                return int(raw["value"])
            with suppress(DuplicateError):  # another allocation created it first: use that
                await collection.insert_one({"key": key, "value": 0, "schema_version": 1})
        raise RepositoryError(
            f"could not allocate from counter {key!r}", document_type=self.document_type
        )

    async def current_and_time(self, key: str) -> tuple[int, datetime | None]:
        """The last number handed out for `key` and when the counter last moved."""
        raw = await self.collection().find_one({"key": key}, {"value": 1, "updated_at": 1})
        if raw is None:
            return 0, None
        return int(raw["value"]), raw.get("updated_at")

    async def current(self, key: str) -> int:
        """The last number handed out for `key` (0 if none)."""
        raw = await self.collection().find_one({"key": key}, {"value": 1})
        return int(raw["value"]) if raw is not None else 0


class CounterRepository(SequenceRepository[Counter]):
    """Counters of the scope's tenant, beside its data."""

    document_type = Counter


class OwnedCounterRepository(SequenceRepository[OwnedCounter]):
    """Counters of the scope's tenant in the platform database."""

    document_type = OwnedCounter
