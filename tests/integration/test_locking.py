"""Optimistic locking on `__v`: a stale write raises VersionConflict and changes nothing."""

from __future__ import annotations

import asyncio

import pytest

from caas_data import DataLayer, NotFoundError, VersionConflict, tenant_scope
from caas_data.saas import User, UserRepository


@pytest.mark.parametrize("model", ["shared", "pro", "enterprise"])
async def test_two_writers_on_one_version_one_wins(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    async with tenant_scope(model_tenant):
        repo = caas_layer.repo(UserRepository)
        created = await repo.create({"external_id": "x", "display_name": "v0"})
        first, second = await repo.get(created.id), await repo.get(created.id)
        winner = await repo.update(first, display_name="first")
        assert winner.version == 1
        with pytest.raises(VersionConflict) as caught:
            await repo.update(second, display_name="second")
        assert caught.value.current_version == 1
        assert caught.value.expected_version == 0
        stored = await repo.get(created.id)
        assert (stored.display_name, stored.version) == ("first", 1)


async def test_many_concurrent_writers_exactly_one_wins(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    async with tenant_scope(shared_tenant):
        repo = caas_layer.repo(UserRepository)
        created = await repo.create({"external_id": "x", "display_name": "v0"})
        copies = [await repo.get(created.id) for _ in range(10)]
        results = await asyncio.gather(
            *(repo.update(c, display_name=f"w{i}") for i, c in enumerate(copies)),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, User)]
        conflicts = [r for r in results if isinstance(r, VersionConflict)]
        others = [r for r in results if not isinstance(r, (User, VersionConflict))]
        assert len(winners) == 1 and len(conflicts) == 9, others
        stored = await repo.get(created.id)
        assert stored.display_name == winners[0].display_name and stored.version == 1


async def test_beanie_save_and_replace_are_conditional(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    async with tenant_scope(pro_tenant):
        user = User(external_id="b", display_name="v0")
        await user.insert()
        stale = await User.get(user.id)
        assert stale is not None
        user.display_name = "saved"
        await user.save()
        assert user.version == 1
        stale.display_name = "lost?"
        with pytest.raises(VersionConflict):
            await stale.save()
        with pytest.raises(VersionConflict):
            await stale.replace()
        user.display_name = "replaced"
        await user.replace()
        fresh = await User.get(user.id)
        assert fresh is not None
        assert (fresh.display_name, fresh.version) == ("replaced", 2)


async def test_repository_save_refuses_stale_and_inserts_new(
    caas_layer: DataLayer, enterprise_tenant: str
) -> None:
    async with tenant_scope(enterprise_tenant):
        repo = caas_layer.repo(UserRepository)
        new = await repo.save(User(external_id="n", display_name="new"))
        assert new.version == 0 and await repo.count() == 1
        stale = await repo.get(new.id)
        new.display_name = "again"
        assert (await repo.save(new)).version == 1
        with pytest.raises(VersionConflict):
            await repo.save(stale)


async def test_update_of_purged_document_is_not_found(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    async with tenant_scope(shared_tenant):
        repo = caas_layer.repo(UserRepository)
        user = await repo.create({"external_id": "p", "display_name": "p"})
        await repo.purge(user)
        with pytest.raises(NotFoundError):
            await repo.update(user, display_name="ghost")
        with pytest.raises(NotFoundError):
            await user.replace()
        assert await repo.count(include_deleted=True) == 0
