"""Units of work: one transaction, the tenant scope kept, transient errors retried."""

from __future__ import annotations

import asyncio

import pytest

from caas_data import DataLayer, User, UserRepository, current_tenant_id, tenant_scope


async def test_commit_makes_all_writes_visible(
    caas_layer: DataLayer, enterprise_tenant: str
) -> None:
    async with tenant_scope(enterprise_tenant):
        repo = caas_layer.repo(UserRepository)
        async with caas_layer.unit_of_work() as uow:
            assert uow.session.in_transaction
            assert current_tenant_id() == enterprise_tenant
            await repo.create({"external_id": "a", "display_name": "a"})
            await User(external_id="b", display_name="b").insert()
        assert await repo.count() == 2


async def test_an_error_rolls_everything_back(caas_layer: DataLayer, shared_tenant: str) -> None:
    async with tenant_scope(shared_tenant):
        repo = caas_layer.repo(UserRepository)
        kept = await repo.create({"external_id": "k", "display_name": "k"})
        with pytest.raises(ValueError, match="boom"):
            async with caas_layer.unit_of_work():
                await repo.create({"external_id": "a", "display_name": "a"})
                await repo.update(kept, display_name="changed")
                raise ValueError("boom")
        assert await repo.count() == 1
        assert (await repo.get(kept.id)).display_name == "k"


async def test_nested_units_join_the_outer_transaction(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    async with tenant_scope(pro_tenant):
        repo = caas_layer.repo(UserRepository)
        with pytest.raises(RuntimeError):
            async with caas_layer.unit_of_work() as outer:
                async with caas_layer.unit_of_work() as inner:
                    assert inner.session is outer.session
                    await repo.create({"external_id": "n", "display_name": "n"})
                raise RuntimeError("abort outer")
        assert await repo.count() == 0


async def test_run_transaction_retries_write_conflicts(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    async with tenant_scope(shared_tenant):
        repo = caas_layer.repo(UserRepository)
        user = await repo.create({"external_id": "c", "display_name": "c", "metadata": {"n": 0}})
        attempts = 0

        async def increment() -> None:
            nonlocal attempts
            attempts += 1
            await repo.collection().update_one({"_id": user.id}, {"$inc": {"metadata.n": 1}})
            await asyncio.sleep(0.01)  # widen the window for a write conflict

        await asyncio.gather(*(caas_layer.run_transaction(increment) for _ in range(8)))
        stored = await repo.get(user.id)
        assert stored.metadata["n"] == 8
        assert stored.version == 8
        assert attempts > 8  # some attempts hit a write conflict and were re-run
