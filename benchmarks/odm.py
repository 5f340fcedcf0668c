"""The ODM tasks (after MongoDB's ODM performance benchmark), one class per contender.

Every contender implements the same five operations on the same shapes; `OdmRun` times them
interleaved (each iteration runs every task on every contender, the contenders taking turns
operation by operation) and keeps medians.
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import bson
from beanie import Document, PydanticObjectId
from pymongo.asynchronous.database import AsyncDatabase

from benchmarks import models as m
from benchmarks.timing import Sample, Session, in_turns, median
from caas_data import DataLayer, Repository, tenant_scope

TASKS = (
    "small create",
    "small update",
    "find by id",
    "large create",
    "large update",
    "nested find",
    "bulk read",
)
SINGLE_TASKS = TASKS[:-1]
SHAPES = ("small", "large", "nested", "bulk")


class Side:
    """One contender: how it creates, updates, reads and bulk-reads each shape."""

    name: str
    tasks: tuple[str, ...] | None = None  # None: every task
    needs_data_sets = True

    def scope(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return contextlib.nullcontext()

    async def create(self, shape: str, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    async def prepare(self, shape: str, datas: list[dict[str, Any]]) -> list[Any]:
        """Store documents untimed; returns what `update`/`get` take."""
        raise NotImplementedError

    async def update(self, shape: str, stored: Any, field: str, value: Any) -> Any:
        raise NotImplementedError

    async def get(self, shape: str, stored: Any) -> Any:
        raise NotImplementedError

    async def nested_find(self, city: str) -> Any:
        raise NotImplementedError

    async def bulk_read(self) -> int:
        raise NotImplementedError


_TYPED: dict[str, type[m._Typed]] = {
    "small": m.TypedSmall,
    "large": m.TypedLarge,
    "nested": m.TypedNested,
    "bulk": m.TypedSmall,
}


class RawSide(Side):
    """Raw PyMongo async with dicts, doing what the schema asks: the floor of everything.

    A new document gets the standard fields, every filter carries the tenant and an update
    checks and bumps the version, as a raw PyMongo user of this schema would write them.
    With `standard=False` ("raw, task fields only"): the task's fields alone, for reference.
    """

    def __init__(
        self, database: AsyncDatabase[dict[str, Any]], tenant_id: str, *, standard: bool = True
    ) -> None:
        self.db, self.tenant_id, self.standard = database, tenant_id, standard
        self.name = "raw" if standard else "raw, task fields only"

    def _new(self, data: dict[str, Any]) -> dict[str, Any]:
        return {**data, **m.standard_fields(self.tenant_id)} if self.standard else dict(data)

    def _where(self, query: dict[str, Any]) -> dict[str, Any]:
        return {**query, "tenant_id": self.tenant_id} if self.standard else query

    async def _update(self, shape: str, document_id: Any, version: int, fields: Any) -> int:
        """$set `fields` if the stored version is still `version`; the new version."""
        if not self.standard:
            await self.db[shape].update_one({"_id": document_id}, {"$set": fields})
            return version
        result = await self.db[shape].update_one(
            {"_id": document_id, "tenant_id": self.tenant_id, "__v": version},
            {"$set": {**fields, "updated_at": datetime.now(UTC)}, "$inc": {"__v": 1}},
        )
        if result.matched_count != 1:
            raise RuntimeError(f"{shape} {document_id} changed under the benchmark")
        return version + 1

    async def create(self, shape: str, data: dict[str, Any]) -> Any:
        document = self._new(data)
        await self.db[shape].insert_one(document)
        return (document["_id"], 0)

    async def prepare(self, shape: str, datas: list[dict[str, Any]]) -> list[Any]:
        documents = [self._new(d) for d in datas]
        await self.db[shape].insert_many(documents)
        return [(d["_id"], 0) for d in documents]

    async def update(self, shape: str, stored: Any, field: str, value: Any) -> Any:
        document_id, version = stored
        return (document_id, await self._update(shape, document_id, version, {field: value}))

    async def get(self, shape: str, stored: Any) -> Any:
        return await self.db[shape].find_one(self._where({"_id": stored[0]}))

    async def nested_find(self, city: str) -> Any:
        return await self.db["nested"].find_one(self._where({m.NESTED_PATH: city}))

    async def bulk_read(self) -> int:
        return len(await self.db["bulk"].find(self._where({})).to_list(None))


class TypedSide(RawSide):
    """The typed floor: raw PyMongo plus pydantic `model_validate`/`model_dump`."""

    name = "typed floor"

    def __init__(self, database: AsyncDatabase[dict[str, Any]], tenant_id: str) -> None:
        super().__init__(database, tenant_id)
        self.name = "typed floor"

    async def create(self, shape: str, data: dict[str, Any]) -> Any:
        model = _TYPED[shape].model_validate({**self._new(data), "_id": bson.ObjectId()})
        await self.db[shape].insert_one(model.model_dump(by_alias=True))
        return model

    async def prepare(self, shape: str, datas: list[dict[str, Any]]) -> list[Any]:
        documents = [{**self._new(d), "_id": bson.ObjectId()} for d in datas]
        models = [_TYPED[shape].model_validate(d) for d in documents]
        await self.db[shape].insert_many([model.model_dump(by_alias=True) for model in models])
        return models

    async def update(self, shape: str, stored: Any, field: str, value: Any) -> Any:
        model = type(stored).model_validate({**stored.model_dump(by_alias=True), field: value})
        dumped = model.model_dump(by_alias=True, include={field})
        model.version = await self._update(shape, model.id, model.version, dumped)
        return model

    async def get(self, shape: str, stored: Any) -> Any:
        raw = await self.db[shape].find_one(self._where({"_id": stored.id}))
        return _TYPED[shape].model_validate(raw)

    async def nested_find(self, city: str) -> Any:
        return m.TypedNested.model_validate(await super().nested_find(city))

    async def bulk_read(self) -> int:
        raws = await self.db["bulk"].find(self._where({})).to_list(None)
        return len([m.TypedSmall.model_validate(raw) for raw in raws])


_BEANIE: dict[str, type[Document]] = {
    "small": m.BeanieSmall,
    "large": m.BeanieLarge,
    "nested": m.BeanieNested,
    "bulk": m.BeanieBulk,
}
_OURS: dict[str, type[Any]] = {
    "small": m.OurSmall,
    "large": m.OurLarge,
    "nested": m.OurNested,
    "bulk": m.OurBulk,
}


class BeanieApi(Side):
    """Plain Beanie's API (`insert`, `save`, `find_one`, `find`) on documents of the schema.

    Like the raw side, it sets the standard fields and puts the tenant in its filters itself.
    Both Beanie contenders read by id with the same call, `find_one({"_id": ...})` (plain
    Beanie's `get()` cannot carry the tenant; it costs the same extra id parsing on both).
    """

    def __init__(self, name: str, classes: dict[str, type[Document]], tenant_id: str) -> None:
        self.name, self.classes, self.tenant_id = name, classes, tenant_id

    def _new(self, data: dict[str, Any]) -> dict[str, Any]:
        return {**data, **m.standard_fields(self.tenant_id)}

    def _where(self, query: dict[str, Any]) -> dict[str, Any]:
        return {**query, "tenant_id": self.tenant_id}

    def _touch(self, document: Any) -> None:
        document.updated_at = datetime.now(UTC)
        document.version += 1

    async def create(self, shape: str, data: dict[str, Any]) -> Any:
        return await self.classes[shape](**self._new(data)).insert()

    async def prepare(self, shape: str, datas: list[dict[str, Any]]) -> list[Any]:
        cls = self.classes[shape]
        documents = [cls(**self._new(d), id=PydanticObjectId()) for d in datas]
        for start in range(0, len(documents), 1000):
            await cls.insert_many(documents[start : start + 1000])
        return documents

    async def update(self, shape: str, stored: Any, field: str, value: Any) -> Any:
        setattr(stored, field, value)
        self._touch(stored)
        return await stored.save()

    async def get(self, shape: str, stored: Any) -> Any:
        return await self.classes[shape].find_one(self._where({"_id": stored.id}))

    async def nested_find(self, city: str) -> Any:
        return await self.classes["nested"].find_one(self._where({m.NESTED_PATH: city}))

    async def bulk_read(self) -> int:
        return len(await self.classes["bulk"].find(self._where({})).to_list())


class OurBeanieApi(BeanieApi):
    """Beanie's API on the layer's documents, inside a tenant scope (the layer does the rest)."""

    def __init__(self, name: str, layer: DataLayer, tenant_id: str) -> None:
        super().__init__(name, _OURS, tenant_id)
        self.layer = layer

    def scope(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return tenant_scope(self.tenant_id, layer=self.layer)

    def _new(self, data: dict[str, Any]) -> dict[str, Any]:
        return data

    def _where(self, query: dict[str, Any]) -> dict[str, Any]:
        return query

    def _touch(self, document: Any) -> None:
        pass


_REPOS: dict[str, type[Repository[Any]]] = {
    "small": m.SmallRepository,
    "large": m.LargeRepository,
    "nested": m.NestedRepository,
    "bulk": m.BulkRepository,
}


class RepoSide(Side):
    """The layer's repositories, inside a tenant scope."""

    def __init__(self, name: str, layer: DataLayer, tenant_id: str | None) -> None:
        self.name, self.layer, self.tenant_id = name, layer, tenant_id
        self.repos = {shape: layer.repo(r) for shape, r in _REPOS.items()}

    def scope(self) -> contextlib.AbstractAsyncContextManager[Any]:
        if self.tenant_id is None:
            return contextlib.nullcontext()
        return tenant_scope(self.tenant_id, layer=self.layer)

    async def create(self, shape: str, data: dict[str, Any]) -> Any:
        return await self.repos[shape].create(data)

    async def prepare(self, shape: str, datas: list[dict[str, Any]]) -> list[Any]:
        stored: list[Any] = []
        for start in range(0, len(datas), 1000):
            stored += await self.repos[shape].create_many(datas[start : start + 1000])
        return stored

    async def update(self, shape: str, stored: Any, field: str, value: Any) -> Any:
        return await self.repos[shape].update(stored, **{field: value})

    async def get(self, shape: str, stored: Any) -> Any:
        return await self.repos[shape].get(stored.id)

    async def nested_find(self, city: str) -> Any:
        return await self.repos["nested"].find_one({m.NESTED_PATH: city})

    async def bulk_read(self) -> int:
        return await bulk_read_repository(self.repos["bulk"])


async def bulk_read_repository(repo: Repository[Any]) -> int:
    """Every document of the repository's collection, typed (the best the API offers)."""
    stream = getattr(repo, "stream", None)
    if stream is not None:
        return len([doc async for doc in stream()])
    return await bulk_read_pages(repo)


async def bulk_read_pages(repo: Repository[Any]) -> int:
    """The same through `find()` pages (at most 1,000 each, keyset-paged)."""
    count, after = 0, None
    while True:
        page = await repo.find(limit=1000, after=after)
        count += len(page)
        if page.next_cursor is None:
            return count
        after = page.next_cursor


class PagedRepoSide(RepoSide):
    """The bulk read through `find()` pages, as the only way before `stream()` existed."""

    tasks = ("bulk read",)

    async def bulk_read(self) -> int:
        return await bulk_read_pages(self.repos["bulk"])


class PlatformRepoSide(RepoSide):
    """The small-document tasks with tenancy switched off: a platform class, no scope."""

    tasks = ("find by id",)
    needs_data_sets = False

    def __init__(self, layer: DataLayer) -> None:
        super().__init__("repo, tenancy off", layer, None)
        self.repos = {"small": layer.repo(m.PlatformSmallRepository)}


@dataclass
class TaskResult:
    """One (task, contender) over the iterations (`OdmRun.results` says which figure)."""

    ops_per_s: float
    cpu_us_per_op: float
    mb_per_s: float | None
    samples: list[Sample]


_UPDATE_FIELD = {"small": ("score", lambda i: i * 2.5), "large": ("counter", lambda i: -i)}


class OdmRun:
    """Prepared state of every contender, and the loop that times them."""

    def __init__(self, sides: list[Side], *, ops: int, bulk_docs: int, seed: int = 16) -> None:
        self.sides = sides
        self.ops = ops
        self.bulk_docs = bulk_docs
        self.data = m.Data(seed)
        self.random = random.Random(seed)
        self.samples: dict[tuple[str, str], list[Sample]] = {}
        standard = m.standard_fields("t-0123456789")
        self.sizes = {
            "small create": len(bson.encode({**self.data.small(0), **standard})),
            "large create": len(bson.encode({**self.data.large(0), **standard})),
            "bulk read": len(bson.encode({**self.data.small(0), **standard})),
        }
        self._smalls = [self.data.small(i) for i in range(ops)]
        self._larges = [self.data.large(i) for i in range(ops)]
        self._nested_count = max(ops, 100)

    async def setup(self) -> None:
        """The read-only data sets: nested documents and the bulk collection, per contender."""
        nested = [self.data.nested(i) for i in range(self._nested_count)]
        bulk = [self.data.small(i) for i in range(self.bulk_docs)]
        for side in self.sides:
            if not side.needs_data_sets:
                continue
            async with side.scope():
                await side.prepare("nested", nested)
                await side.prepare("bulk", bulk)

    async def prepare_for(self, side: Side, task: str) -> list[Any]:
        """The stored documents `task` works on (updates and reads by id), in `side`'s scope."""
        if task in ("small update", "find by id"):
            return await side.prepare("small", self._smalls)
        if task == "large update":
            return await side.prepare("large", self._larges)
        return []

    def op(self, side: Side, task: str, prepared: list[Any]) -> Callable[[int], Awaitable[Any]]:
        """Operation `i` of a single-document `task` (`i` < `self.ops`)."""
        if task in ("small create", "large create"):
            shape = task.split()[0]
            datas = self._smalls if shape == "small" else self._larges
            return lambda i: side.create(shape, datas[i])
        if task in ("small update", "large update"):
            shape = task.split()[0]
            field, value = _UPDATE_FIELD[shape]

            async def update(i: int) -> None:
                prepared[i] = await side.update(shape, prepared[i], field, value(i))

            return update
        if task == "find by id":
            return lambda i: side.get("small", prepared[i])
        if task == "nested find":
            cities = [f"city-{self.random.randrange(self._nested_count)}" for _ in range(self.ops)]
            return lambda i: side.nested_find(cities[i])
        raise ValueError(task)

    def session(self, side: Side, task: str) -> Session:
        """`side`'s scope with the documents `task` works on, yielding its operation `i`."""

        @contextlib.asynccontextmanager
        async def opened() -> AsyncIterator[Callable[[int], Awaitable[Any]]]:
            async with side.scope():
                if task == "bulk read":
                    yield functools.partial(self._bulk_read, side)
                else:
                    yield self.op(side, task, await self.prepare_for(side, task))

        return opened

    async def _bulk_read(self, side: Side, _: int) -> None:
        count = await side.bulk_read()
        if count != self.bulk_docs:  # a per-document figure needs the true count
            raise RuntimeError(
                f"{side.name}: the bulk read returned {count} documents, expected {self.bulk_docs}"
            )

    async def iterate(self, tasks: tuple[str, ...], iterations: int) -> None:
        """Every iteration runs each task on every contender, operation by operation in turn.

        The contenders go in a new random order every round (seeded: the same in every run).

        A first, untimed round warms caches, connections and pydantic's validators up.
        """
        for it in range(-1, iterations):
            for task in tasks:
                sides = [s for s in self.sides if s.tasks is None or task in s.tasks]
                sessions = [self.session(side, task) for side in sides]
                if task == "bulk read":
                    # One long read each: every contender starts from a collected heap.
                    samples = await in_turns(1, sessions, shuffle=self.random, collect=True)
                    samples = [Sample(self.bulk_docs, s.wall, s.cpu) for s in samples]
                else:
                    samples = await in_turns(self.ops, sessions, shuffle=self.random)
                if it >= 0:
                    for side, sample in zip(sides, samples, strict=True):
                        self.samples.setdefault((task, side.name), []).append(sample)

    def results(self) -> dict[tuple[str, str], TaskResult]:
        """Per (task, contender): the median of the iterations; for a bulk read, the fastest.

        A bulk read lasts longer than the host's phases of speed (`timing.in_turns`), and a
        slower phase only ever adds time: its iterations read, for the same code, anywhere
        from 1x to 2x the fastest one, whichever side they fell on. The fastest read is the
        one the host disturbed least (as `timeit` advises).
        """
        out = {}
        for (task, side), samples in self.samples.items():
            pick = min if task == "bulk read" else median
            per_op_wall = pick([s.wall / s.ops for s in samples])
            per_op_cpu = pick([s.cpu / s.ops for s in samples])
            size = self.sizes.get(task)
            out[(task, side)] = TaskResult(
                ops_per_s=1 / per_op_wall if per_op_wall else 0.0,
                cpu_us_per_op=per_op_cpu * 1e6,
                mb_per_s=None if size is None else size / per_op_wall / 1e6,
                samples=samples,
            )
        return out


__all__ = ["TASKS", "BeanieApi", "OdmRun", "OurBeanieApi", "RawSide", "RepoSide", "TypedSide"]
