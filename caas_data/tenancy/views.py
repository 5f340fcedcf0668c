"""A Beanie `View`'s reads, run as pipelines on its source's routed collection.

Beanie reads a view from a MongoDB view created in the database `init_beanie` was given (the
platform database). A tenant's data lives at its placement, behind the guard, so a view is
read there instead: its pipeline is put in front of every read of its source document's
guarded collection (the guard adds the tenant `$match` first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from caas_data.errors import UnsafeOperation
from caas_data.tenancy.guard import GuardedCollection

__all__ = ["ViewCollection"]


class _PipelineCursor:
    """What Beanie needs of a `find()` cursor (async iteration, `to_list`), lazily run."""

    def __init__(self, run: Any) -> None:
        self._run = run
        self._cursor: Any = None

    async def _open(self) -> Any:
        if self._cursor is None:
            self._cursor = await self._run()
        return self._cursor

    def __aiter__(self) -> _PipelineCursor:
        return self

    async def __anext__(self) -> Any:
        return await (await self._open()).__anext__()

    async def to_list(self, length: int | None = None) -> list[Any]:
        """All (or `length`) remaining documents."""
        result: list[Any] = await (await self._open()).to_list(length)
        return result


class ViewCollection:
    """The reads Beanie makes on a view, on its source's guarded collection."""

    def __init__(self, source: GuardedCollection, pipeline: Sequence[Mapping[str, Any]]) -> None:
        self._source = source
        self._pipeline = [dict(stage) for stage in pipeline]

    def __getattr__(self, name: str) -> Any:
        raise UnsafeOperation(f"a view is read-only: {name!r} is not available on it")

    @property
    def name(self) -> str:
        """The source's collection name (a view has no collection of its own here)."""
        return str(self._source.name)

    def _stages(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Any = None,
        skip: int = 0,
        limit: int = 0,
    ) -> list[dict[str, Any]]:
        stages = list(self._pipeline)
        if filter:
            stages.append({"$match": dict(filter)})
        if sort:
            stages.append({"$sort": dict(sort)})
        if skip:
            stages.append({"$skip": skip})
        if limit:
            stages.append({"$limit": limit})
        if projection:
            stages.append({"$project": dict(projection)})
        return stages

    def find(
        self,
        filter: Mapping[str, Any] | None = None,
        projection: Mapping[str, Any] | None = None,
        skip: int = 0,
        limit: int = 0,
        sort: Any = None,
        **kwargs: Any,
    ) -> _PipelineCursor:
        """`find` on the view: its pipeline, then the filter, sort, skip, limit, projection."""
        stages = self._stages(filter, projection=projection, sort=sort, skip=skip, limit=limit)

        async def run() -> Any:
            return await self._source.aggregate(stages, **kwargs)

        return _PipelineCursor(run)

    async def find_one(self, filter: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """The first document `find` gives, or None."""
        return await anext(self.find(filter, limit=1, **kwargs), None)

    async def aggregate(self, pipeline: Sequence[Mapping[str, Any]], **kwargs: Any) -> Any:
        """`aggregate` on the view: its pipeline, then `pipeline`."""
        return await self._source.aggregate([*self._pipeline, *pipeline], **kwargs)

    async def count_documents(self, filter: Mapping[str, Any] | None = None, **kwargs: Any) -> int:
        """How many documents of the view match `filter`."""
        stages = [*self._stages(filter), {"$count": "count"}]
        found = await (await self._source.aggregate(stages, **kwargs)).to_list()
        return int(found[0]["count"]) if found else 0

    async def distinct(
        self, key: str, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Any]:
        """The distinct values of `key` in the view's documents matching `filter`."""
        stages = [*self._stages(filter), {"$group": {"_id": f"${key}"}}]
        found = await (await self._source.aggregate(stages, **kwargs)).to_list()
        return [row["_id"] for row in found]
