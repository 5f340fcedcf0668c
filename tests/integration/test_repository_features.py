"""The base repository's expected features, in every isolation model, never across tenants:
projection into a smaller model, totals on pages, partial update by id, delete-many, upsert."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from caas_data import (
    DataLayer,
    DocumentValidationError,
    NotFoundError,
    TenantMismatch,
    VersionConflict,
    tenant_scope,
)
from caas_data.documents.saas.settings import TenantSettings
from caas_data.documents.saas.users import DevicePlatform
from caas_data.repositories.analytics.audit import AuditLogRepository
from caas_data.repositories.audited import AuditedRepository
from caas_data.repositories.saas.settings import TenantSettingsRepository
from caas_data.repositories.saas.users import UserDeviceRepository
from caas_data.saas import User, UserRepository


class UserName(BaseModel):
    external_id: str
    display_name: str


async def _seed(layer: DataLayer, tenant_id: str, count: int, prefix: str = "u") -> None:
    async with tenant_scope(tenant_id):
        await layer.repo(UserRepository).create_many(
            {"external_id": f"{prefix}{i:02}", "display_name": f"{prefix} {i}"}
            for i in range(count)
        )


async def test_find_projects_into_a_smaller_model_and_counts_when_asked(
    caas_layer: DataLayer, tenant: str, shared_tenant: str
) -> None:
    await _seed(caas_layer, tenant, 5)
    await _seed(caas_layer, shared_tenant, 7, prefix="n")  # a neighbour, never counted
    async with tenant_scope(tenant):
        users = caas_layer.repo(UserRepository)
        first = await users.find(sort="-external_id", limit=2, project=UserName, total=True)
        assert all(type(item) is UserName for item in first)
        assert [u.external_id for u in first] == ["u04", "u03"]
        assert first.total == 5 and first.has_more
        second = await users.find(
            sort="-external_id", limit=2, project=UserName, after=first.next_cursor
        )
        assert [u.external_id for u in second] == ["u02", "u01"] and second.total is None
        plain = await users.find({"external_id": {"$gte": "u03"}}, total=True)
        assert plain.total == 2 and not plain.has_more and plain.next_cursor is None
        with pytest.raises(DocumentValidationError, match="no field"):

            class Unknown(BaseModel):
                nickname: str

            await users.find(project=Unknown)


async def test_update_by_id_writes_without_reading_and_checks_a_given_version(
    caas_layer: DataLayer, tenant: str, shared_tenant: str
) -> None:
    async with tenant_scope(shared_tenant):
        neighbour = await caas_layer.repo(UserRepository).create(
            {"external_id": "n", "display_name": "n"}
        )
    async with tenant_scope(tenant):
        users = caas_layer.repo(UserRepository)
        ada = await users.create({"external_id": "ada", "display_name": "Ada"})
        renamed = await users.update_by_id(ada.id, {"display_name": "Ada L."})
        assert renamed.display_name == "Ada L." and renamed.version == ada.version + 1
        again = await users.update_by_id(
            str(ada.id), {"locale": "en"}, expected_version=renamed.version, actor="admin"
        )
        assert again.version == renamed.version + 1 and again.display_name == "Ada L."
        with pytest.raises(VersionConflict):
            await users.update_by_id(ada.id, {"locale": "fr"}, expected_version=renamed.version)
        with pytest.raises(DocumentValidationError) as bad:
            await users.update_by_id(ada.id, {"email": "not an email"})
        assert bad.value.fields == ("email",)
        with pytest.raises(TenantMismatch):
            await users.update_by_id(ada.id, {"tenant_id": shared_tenant})
        for owned in ("version", "created_at", "deleted_at"):
            with pytest.raises(DocumentValidationError, match="managed by the layer"):
                await users.update_by_id(ada.id, {owned: None})
        with pytest.raises(NotFoundError):  # another tenant's document is not there
            await users.update_by_id(neighbour.id, {"display_name": "taken"})
        assert (await users.get(ada.id)).locale == "en"
    async with tenant_scope(shared_tenant):
        assert (await caas_layer.repo(UserRepository).get(neighbour.id)).display_name == "n"


async def test_delete_many_is_soft_by_default_refuses_an_empty_filter_and_stays_in_tenant(
    caas_layer: DataLayer, tenant: str, shared_tenant: str
) -> None:
    await _seed(caas_layer, tenant, 6)
    await _seed(caas_layer, shared_tenant, 6)  # the same external ids, in a neighbour
    async with tenant_scope(tenant):
        users = caas_layer.repo(UserRepository)
        with pytest.raises(DocumentValidationError, match="match_all=True"):
            await users.delete_many({})
        for purge in (False, True):  # a filter naming the neighbour is refused by the guard
            with pytest.raises(TenantMismatch):
                await users.delete_many({"tenant_id": shared_tenant}, purge=purge)
        gone = await users.delete_many({"external_id": {"$lt": "u03"}}, actor="admin")
        assert gone == 3 and await users.count() == 3
        deleted = await users.find({"deleted_at": {"$ne": None}}, include_deleted=True)
        assert {u.deleted_by for u in deleted} == {"admin"}
        await users.restore(deleted.items[0].id)  # soft: restorable one by one
        assert await users.count() == 4
        purged = await users.delete_many({"external_id": {"$lt": "u03"}}, purge=True)
        assert purged == 3 and await users.count(include_deleted=True) == 3
        assert await users.delete_many({}, match_all=True) == 3
        assert await users.count() == 0
    async with tenant_scope(shared_tenant):
        assert await caas_layer.repo(UserRepository).count() == 6


async def test_upsert_creates_once_then_updates_even_when_racing(
    caas_layer: DataLayer, tenant: str, shared_tenant: str
) -> None:
    async with tenant_scope(shared_tenant):
        await caas_layer.repo(UserRepository).create({"external_id": "k", "display_name": "n"})
    async with tenant_scope(tenant):
        users = caas_layer.repo(UserRepository)
        results = await asyncio.gather(
            *(users.upsert({"external_id": "k"}, {"display_name": f"v{i}"}) for i in range(8))
        )
        assert len({r.id for r in results}) == 1
        assert await users.count({"external_id": "k"}) == 1
        stored = await users.upsert(
            {"external_id": "k"}, {"locale": "en"}, on_insert={"display_name": "never"}
        )
        assert stored.locale == "en" and stored.display_name != "never"
        assert stored.tenant_id == tenant
        fresh = await users.upsert({"external_id": "new"}, on_insert={"display_name": "New"})
        assert fresh.display_name == "New" and fresh.version >= 0
        with pytest.raises(DocumentValidationError):
            await users.upsert({"external_id": "x"}, {"display_name": ""})  # bad value
        with pytest.raises(DocumentValidationError):
            await users.upsert({}, {"display_name": "x"})  # no key
        for owned in ({"tenant_id": shared_tenant}, {"id": fresh.id}, {"_id": fresh.id}):
            with pytest.raises(DocumentValidationError, match="upsert key"):
                await users.upsert(owned, {"display_name": "x"})
        with pytest.raises(TenantMismatch):
            await users.upsert({"external_id": "k"}, {"tenant_id": shared_tenant})
    async with tenant_scope(shared_tenant):
        neighbour = await caas_layer.repo(UserRepository).find_one({"external_id": "k"})
        assert neighbour is not None and neighbour.display_name == "n"


async def test_settings_use_the_one_upsert(caas_layer: DataLayer, tenant: str) -> None:
    async with tenant_scope(tenant):
        repo = caas_layer.repo(TenantSettingsRepository)
        saved = await asyncio.gather(
            *(repo.update_section("limits", {"max_group_members": 10 + i}) for i in range(4))
        )
        assert len({s.id for s in saved}) == 1
        assert await repo.count() == 1
        assert isinstance(await repo.get_settings(), TenantSettings)


class AuditedUsers(AuditedRepository[User]):
    document_type = User
    audit_target = "user"


async def test_audited_repositories_record_the_new_writes_with_their_actor(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant):
        users = caas_layer.repo(AuditedUsers)
        ada = await users.upsert({"external_id": "ada"}, {"display_name": "Ada"}, actor="op")
        await users.update_by_id(ada.id, {"locale": "en"}, actor="op")
        assert await users.delete_many({"external_id": "ada"}, actor="op") == 1
        trail = await caas_layer.repo(AuditLogRepository).trail()
    assert [(e.action, e.actor) for e in trail] == [
        ("user.upserted", "op"),
        ("user.updated", "op"),
        ("user.bulk_deleted", "op"),
    ]
    assert trail.items[1].details == {"fields": ["locale"]}
    assert trail.items[2].details == {"count": 1, "purged": False}


async def test_a_secret_value_never_shows_in_an_upsert_or_update_by_id_error(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    secret = "tok-" + "s" * 5000  # over the 4096 limit of push_token (a repr=False field)
    async with tenant_scope(shared_tenant):
        devices = caas_layer.repo(UserDeviceRepository)
        owner = await caas_layer.repo(UserRepository).create(
            {"external_id": "o", "display_name": "o"}
        )
        device = await devices.upsert(
            {"user_id": owner.id, "device_id": "phone"}, {"platform": DevicePlatform.IOS}
        )
        new = {"platform": DevicePlatform.IOS, "push_token": secret}
        attempts = [
            lambda: devices.upsert({"user_id": owner.id, "device_id": "d2"}, new),
            lambda: devices.update_by_id(device.id, {"push_token": secret}),
        ]
        for attempt in attempts:
            with pytest.raises(DocumentValidationError) as caught:
                await attempt()
            shown = [repr(caught.value), str(caught.value)]
            cause = caught.value.__cause__
            while cause is not None:
                shown.append(str(cause))
                cause = cause.__cause__
            assert caught.value.fields == ("push_token",)
            assert not any(secret[:50] in text for text in shown)
