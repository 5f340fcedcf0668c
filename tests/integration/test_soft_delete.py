"""Soft delete: hidden from reads, restorable, purgeable, and never resurrected by a write."""

from __future__ import annotations

import pytest

from caas_data import DataLayer, DuplicateError, NotFoundError, tenant_scope
from caas_data.saas import User, UserRepository

ADMIN = "admin-7"


async def test_soft_deleted_users_are_hidden_then_restored(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    async with tenant_scope(shared_tenant):
        repo = caas_layer.repo(UserRepository)
        user = await repo.create({"external_id": "d", "display_name": "d"})
        await repo.create({"external_id": "live", "display_name": "live"})
        deleted = await repo.soft_delete(user, actor=ADMIN)
        assert deleted.deleted_at is not None and deleted.deleted_by == ADMIN
        assert await repo.get_or_none(user.id) is None
        assert await repo.count() == 1
        assert [u.external_id for u in await repo.find()] == ["live"]
        assert await User.find().count() == 1  # Beanie's API sees the same
        assert await User.get(user.id) is None
        assert (await repo.get(user.id, include_deleted=True)).is_deleted
        assert await repo.count(include_deleted=True) == 2
        again = await repo.soft_delete(user, actor="someone-else")  # idempotent
        assert again.deleted_by == ADMIN
        restored = await repo.restore(user)
        assert restored.deleted_at is None and restored.deleted_by is None
        assert await repo.count() == 2


async def test_writes_do_not_resurrect_deleted_documents(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    async with tenant_scope(pro_tenant):
        repo = caas_layer.repo(UserRepository)
        user = await repo.create({"external_id": "d", "display_name": "d"})
        await repo.soft_delete(user)
        with pytest.raises(NotFoundError, match="soft-deleted"):
            await repo.update(user, display_name="zombie")
        with pytest.raises(NotFoundError, match="soft-deleted"):
            await user.save()
        assert await repo.update_many({}, {"display_name": "zombie"}) == 0
        stored = await repo.get(user.id, include_deleted=True)
        assert stored.display_name == "d" and stored.is_deleted


async def test_duplicate_of_a_deleted_document_says_restore(
    caas_layer: DataLayer, enterprise_tenant: str
) -> None:
    async with tenant_scope(enterprise_tenant):
        repo = caas_layer.repo(UserRepository)
        user = await repo.create({"external_id": "dup", "display_name": "d"})
        with pytest.raises(DuplicateError) as live:
            await repo.create({"external_id": "dup", "display_name": "d2"})
        assert not live.value.soft_deleted
        await repo.soft_delete(user)
        with pytest.raises(DuplicateError, match="soft-deleted: restore it") as caught:
            await repo.create({"external_id": "dup", "display_name": "d2"})
        assert caught.value.soft_deleted and caught.value.key["external_id"] == "dup"
        assert await repo.count(include_deleted=True) == 1


async def test_purge_removes_for_good(caas_layer: DataLayer, shared_tenant: str) -> None:
    async with tenant_scope(shared_tenant):
        repo = caas_layer.repo(UserRepository)
        user = await repo.create({"external_id": "p", "display_name": "p"})
        await repo.soft_delete(user)
        await repo.purge(user)
        assert await repo.get_or_none(user.id, include_deleted=True) is None
        with pytest.raises(NotFoundError):
            await repo.purge(user)
        with pytest.raises(NotFoundError):
            await repo.restore(user)


async def test_beanie_delete_is_a_soft_delete(caas_layer: DataLayer, shared_tenant: str) -> None:
    async with tenant_scope(shared_tenant):
        user = User(external_id="b", display_name="b")
        await user.insert()
        await user.delete(deleted_by=ADMIN)
        assert user.is_deleted
        repo = caas_layer.repo(UserRepository)
        assert await repo.get_or_none(user.id) is None
        assert (await repo.get(user.id, include_deleted=True)).deleted_by == ADMIN


async def test_soft_delete_inside_a_transaction_stays_inside(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    async with tenant_scope(pro_tenant):
        repo = caas_layer.repo(UserRepository)
        user = await repo.create({"external_id": "t", "display_name": "t"})
        with pytest.raises(RuntimeError):
            async with caas_layer.unit_of_work():
                await repo.soft_delete(user)
                assert await repo.get_or_none(user.id) is None  # seen inside
                raise RuntimeError("abort")
        assert await repo.get_or_none(user.id) is not None  # rolled back
        async with caas_layer.unit_of_work():
            await user.delete()  # Beanie's path joins the transaction too
        assert await repo.get_or_none(user.id) is None
