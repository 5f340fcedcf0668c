"""Property test of the tenant boundary and the standard-field rules.

A hypothesis state machine drives random sequences of operations (every kind the guard knows,
with versioned updates, soft deletes, restores and purges) for four fresh tenants per example:
two in the shared model, one PRO, one Enterprise. After each step every tenant's view, read
through the layer and also straight from its physical collection, must equal a per-tenant
model, so no operation can have touched another tenant.

CI runs the default profile (25 examples of 12 steps); `--hypothesis-profile=deep` runs many more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from bson import ObjectId
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    rule,
)
from pymongo import DeleteOne, InsertOne, UpdateMany, UpdateOne

from caas_data import NotFoundError, TenantMismatch, VersionConflict, tenant_scope
from caas_data.saas import User, UserRepository
from caas_data.testing import ServerHandle

from .conftest import raw_collection
from .machines import TIERS, LayerMachine, each_tenant, run_machine


@dataclass
class Row:
    external_id: str
    n: int
    version: int = 0
    deleted: bool = False


@dataclass
class World:
    """What each tenant must see: id -> row."""

    rows: dict[str, dict[ObjectId, Row]] = field(default_factory=dict)


class IsolationMachine(LayerMachine):
    @initialize()
    def provision(self) -> None:
        self.tiers = self.new_tenants("h")
        self.tenants = list(self.tiers)
        self.world = World({t: {} for t in self.tenants})

    # -- helpers --------------------------------------------------------------------

    def pick(
        self, data: st.DataObject, tenant: str, *, deleted: bool | None = None
    ) -> ObjectId | None:
        ids = sorted(
            i for i, r in self.world.rows[tenant].items() if deleted is None or r.deleted is deleted
        )
        return data.draw(st.sampled_from(ids)) if ids else None

    def other_id(self, data: st.DataObject, tenant: str) -> ObjectId | None:
        foreign = sorted(i for t, rows in self.world.rows.items() if t != tenant for i in rows)
        return data.draw(st.sampled_from(foreign)) if foreign else None

    async def in_scope(self, tenant: str, coro_fn: Any) -> Any:
        async with tenant_scope(tenant, layer=self.layer):
            return await coro_fn(self.layer.repo(UserRepository))

    tenant_index = st.integers(min_value=0, max_value=len(TIERS) - 1)

    # -- rules ----------------------------------------------------------------------

    @rule(t=tenant_index, n=st.integers(0, 9))
    def create(self, t: int, n: int) -> None:
        tenant = self.tenants[t]
        external = f"x{next(self.counter)}"

        async def go(repo: UserRepository) -> ObjectId:
            user = await repo.create(
                {"external_id": external, "display_name": "d", "metadata": {"n": n}}
            )
            return user.id

        new_id = self.run(self.in_scope(tenant, go))
        self.world.rows[tenant][new_id] = Row(external, n)

    @rule(t=tenant_index, data=st.data(), n=st.integers(0, 9), stale=st.booleans())
    def versioned_update(self, t: int, data: st.DataObject, n: int, stale: bool) -> None:
        tenant = self.tenants[t]
        target = self.pick(data, tenant, deleted=False)
        if target is None:
            return
        row = self.world.rows[tenant][target]

        async def go(repo: UserRepository) -> None:
            user = await repo.get(target)
            if stale:
                user = user.model_copy(update={"version": user.version - 1 if user.version else 99})
                with pytest.raises(VersionConflict):
                    await repo.update(user, metadata={"n": n})
            else:
                await repo.update(user, metadata={"n": n})

        self.run(self.in_scope(tenant, go))
        if not stale:
            row.n, row.version = n, row.version + 1

    @rule(t=tenant_index, data=st.data())
    def soft_delete(self, t: int, data: st.DataObject) -> None:
        tenant = self.tenants[t]
        target = self.pick(data, tenant, deleted=False)
        if target is None:
            return
        self.run(self.in_scope(tenant, lambda repo: repo.soft_delete(target, actor="hyp")))
        row = self.world.rows[tenant][target]
        row.deleted, row.version = True, row.version + 1

    @rule(t=tenant_index, data=st.data())
    def restore(self, t: int, data: st.DataObject) -> None:
        tenant = self.tenants[t]
        target = self.pick(data, tenant, deleted=True)
        if target is None:
            return
        self.run(self.in_scope(tenant, lambda repo: repo.restore(target)))
        row = self.world.rows[tenant][target]
        row.deleted, row.version = False, row.version + 1

    @rule(t=tenant_index, data=st.data())
    def purge(self, t: int, data: st.DataObject) -> None:
        tenant = self.tenants[t]
        target = self.pick(data, tenant)
        if target is None:
            return
        self.run(self.in_scope(tenant, lambda repo: repo.purge(target)))
        del self.world.rows[tenant][target]

    @rule(t=tenant_index, threshold=st.integers(0, 9))
    def update_many(self, t: int, threshold: int) -> None:
        tenant = self.tenants[t]

        async def go(repo: UserRepository) -> int:
            return await repo.update_many(
                {"metadata.n": {"$gte": threshold}}, {"$inc": {"metadata.n": 1}}
            )

        changed = self.run(self.in_scope(tenant, go))
        expected = 0
        for row in self.world.rows[tenant].values():
            if not row.deleted and row.n >= threshold:
                row.n, row.version = row.n + 1, row.version + 1
                expected += 1
        assert changed == expected

    @rule(t=tenant_index, threshold=st.integers(0, 12))
    def delete_many_raw(self, t: int, threshold: int) -> None:
        tenant = self.tenants[t]

        async def go(repo: UserRepository) -> int:
            result = await repo.collection().delete_many({"metadata.n": {"$gt": threshold}})
            return int(result.deleted_count)

        deleted = self.run(self.in_scope(tenant, go))
        doomed = [i for i, r in self.world.rows[tenant].items() if r.n > threshold]
        for i in doomed:
            del self.world.rows[tenant][i]
        assert deleted == len(doomed)

    @rule(t=tenant_index, data=st.data(), n=st.integers(0, 9))
    def beanie_save(self, t: int, data: st.DataObject, n: int) -> None:
        tenant = self.tenants[t]
        target = self.pick(data, tenant, deleted=False)
        if target is None:
            return

        async def go(repo: UserRepository) -> None:
            user = await User.get(target)
            assert user is not None
            user.metadata = {"n": n}
            await user.save()

        self.run(self.in_scope(tenant, go))
        row = self.world.rows[tenant][target]
        row.n, row.version = n, row.version + 1

    @rule(t=tenant_index, n=st.integers(0, 9))
    def bulk_write(self, t: int, n: int) -> None:
        tenant = self.tenants[t]
        external = f"x{next(self.counter)}"

        async def go(repo: UserRepository) -> ObjectId:
            new_id = ObjectId()
            await repo.collection().bulk_write(
                [
                    InsertOne({"_id": new_id, "external_id": external, "display_name": "b",
                               "metadata": {"n": n}, "deleted_at": None}),
                    UpdateMany({"metadata.n": 100}, {"$set": {"display_name": "never"}}),
                    UpdateOne({"_id": new_id}, {"$inc": {"metadata.n": 1}}),
                    DeleteOne({"external_id": "does-not-exist"}),
                ]
            )  # fmt: skip
            return new_id

        new_id = self.run(self.in_scope(tenant, go))
        self.world.rows[tenant][new_id] = Row(external, n + 1, version=1)

    @rule(t=tenant_index, data=st.data())
    def cross_tenant_attempts(self, t: int, data: st.DataObject) -> None:
        tenant = self.tenants[t]
        foreign = self.other_id(data, tenant)
        if foreign is None:
            return

        async def go(repo: UserRepository) -> None:
            assert await repo.get_or_none(foreign, include_deleted=True) is None
            with pytest.raises(NotFoundError):
                await repo.purge(foreign)
            result = await repo.collection().update_one(
                {"_id": foreign}, {"$set": {"metadata.n": 77}}
            )
            assert result.matched_count == 0
            with pytest.raises(TenantMismatch):
                await repo.collection().delete_many({"tenant_id": {"$ne": tenant}})
            joined = await User.aggregate(
                [{"$lookup": {"from": "users", "localField": "_id", "foreignField": "_id",
                              "as": "self"}},
                 {"$unionWith": {"coll": "users"}},
                 {"$project": {"tenant_id": 1, "self.tenant_id": 1}}]
            ).to_list()  # fmt: skip
            for doc in joined:
                assert doc["tenant_id"] == tenant
                assert all(j["tenant_id"] == tenant for j in doc.get("self", []))

        self.run(self.in_scope(tenant, go))

    # -- the invariant --------------------------------------------------------------

    @invariant()
    def every_tenant_sees_exactly_its_model(self) -> None:
        if not hasattr(self, "world"):
            return

        async def check(tenant: str, rows: dict[ObjectId, Row]) -> None:
            async with tenant_scope(tenant, layer=self.layer):
                repo = self.layer.repo(UserRepository)
                page = await repo.find(include_deleted=True, limit=1000)
                seen = {
                    u.id: Row(u.external_id, u.metadata["n"], u.version, u.is_deleted) for u in page
                }
                assert seen == rows, tenant
                assert await repo.count() == sum(not r.deleted for r in rows.values())
            raw = raw_collection(self.layer, tenant, self.tiers[tenant], "users")
            stored = await raw.find({"tenant_id": tenant}).to_list()
            assert {d["_id"]: (d["__v"], d["deleted_at"] is not None) for d in stored} == {
                i: (r.version, r.deleted) for i, r in rows.items()
            }

        self.run(each_tenant(check, self.world.rows))


def test_tenant_isolation_state_machine(caas_server: ServerHandle) -> None:
    run_machine(IsolationMachine, caas_server)
