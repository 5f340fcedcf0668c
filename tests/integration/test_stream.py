"""`Repository.stream`: every match in batches, no page cap, optional projection; scope-bound."""

from __future__ import annotations

import pytest
from beanie import PydanticObjectId
from pydantic import BaseModel, Field

from caas_data import DataLayer, DocumentValidationError, TenantMismatch, tenant_scope
from caas_data.saas import User, UserRepository

from .conftest import Tenants


class UserName(BaseModel):
    id: PydanticObjectId = Field(alias="_id")
    external_id: str


async def _users(layer: DataLayer, count: int, stem: str = "u") -> list[User]:
    return await layer.repo(UserRepository).create_many(
        [{"external_id": f"{stem}{i:03d}", "display_name": f"{stem} {i}"} for i in range(count)]
    )


async def test_stream_yields_every_match_across_batches(caas_layer: DataLayer, tenant: str) -> None:
    async with tenant_scope(tenant):
        made = await _users(caas_layer, 25)
        await caas_layer.repo(UserRepository).soft_delete(made[3])
        repo = caas_layer.repo(UserRepository)

        live = [u async for u in repo.stream(sort="external_id", batch_size=7)]
        everyone = [u async for u in repo.stream(batch_size=10, include_deleted=True)]
        names = [u async for u in repo.stream({"external_id": {"$gte": "u020"}}, project=UserName)]

    assert [u.external_id for u in live] == [f"u{i:03d}" for i in range(25) if i != 3]
    assert all(isinstance(u, User) and u.tenant_id == tenant for u in live)
    assert len(everyone) == 25
    assert sorted(n.external_id for n in names) == [f"u{i:03d}" for i in range(20, 25)]
    assert all(type(n) is UserName for n in names)
    assert {n.id for n in names} == {u.id for u in made[20:]}


async def test_stream_sees_only_its_tenant(caas_layer: DataLayer, tenants: Tenants) -> None:
    for tenant in tenants.all:
        async with tenant_scope(tenant):
            await _users(caas_layer, 3, stem=tenant[:3])
    for tenant in tenants.all:
        async with tenant_scope(tenant):
            seen = [u async for u in caas_layer.repo(UserRepository).stream(batch_size=2)]
        assert len(seen) == 3 and {u.tenant_id for u in seen} == {tenant}


async def test_a_stream_carried_into_another_scope_is_refused(
    caas_layer: DataLayer, tenants: Tenants
) -> None:
    async with tenant_scope(tenants.shared):
        await _users(caas_layer, 5)
        stream = caas_layer.repo(UserRepository).stream(batch_size=2)
        first = await anext(stream)
        await anext(stream)
    assert first.tenant_id == tenants.shared
    async with tenant_scope(tenants.pro):
        with pytest.raises(TenantMismatch):
            await anext(stream)  # the next batch would be fetched in the wrong scope


async def test_stream_checks_its_arguments_before_any_io(
    caas_layer: DataLayer, tenant: str
) -> None:
    class Unknown(BaseModel):
        nickname: str

    async with tenant_scope(tenant):
        repo = caas_layer.repo(UserRepository)
        with pytest.raises(DocumentValidationError):
            await anext(repo.stream(batch_size=0))
        with pytest.raises(DocumentValidationError):
            await anext(repo.stream(project=Unknown))
        with pytest.raises(DocumentValidationError):
            await anext(repo.stream({"nickname": "x"}))
