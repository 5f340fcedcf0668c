"""Users are isolated per tenant in all three models, and stored where the schema says."""

from __future__ import annotations

import pytest

from caas_data import DataLayer, Tier, tenant_scope
from caas_data.saas import User, UserRepository

from .conftest import MODEL_TIERS as TIERS
from .conftest import Tenants, raw_collection


async def _seed(layer: DataLayer, tenants: Tenants) -> None:
    for tenant in tenants.all:
        async with tenant_scope(tenant):
            repo = layer.repo(UserRepository)
            for i in range(3):
                await repo.create({"external_id": f"u{i}", "display_name": f"{tenant} {i}"})


async def test_each_tenant_sees_only_its_users(caas_layer: DataLayer, tenants: Tenants) -> None:
    await _seed(caas_layer, tenants)
    for tenant in tenants.all:
        async with tenant_scope(tenant):
            repo = caas_layer.repo(UserRepository)
            page = await repo.find(limit=100)
            assert {u.tenant_id for u in page} == {tenant}
            assert {u.display_name for u in page} == {f"{tenant} {i}" for i in range(3)}
            assert await repo.count() == 3
            # the same external id exists in every tenant; each sees its own
            assert (await repo.get_by_external_id("u1")).display_name == f"{tenant} 1"


async def test_beanie_api_is_routed_too(caas_layer: DataLayer, tenants: Tenants) -> None:
    await _seed(caas_layer, tenants)
    for tenant in tenants.all:
        async with tenant_scope(tenant):
            found = await User.find(User.external_id == "u2").to_list()
            assert [u.display_name for u in found] == [f"{tenant} 2"]
            assert await User.find().count() == 3
            grouped = await User.aggregate(
                [{"$group": {"_id": "$tenant_id", "n": {"$sum": 1}}}]
            ).to_list()
            assert grouped == [{"_id": tenant, "n": 3}]
            assert await User.distinct("tenant_id") == [tenant]


async def test_data_lands_where_the_schema_says(caas_layer: DataLayer, tenants: Tenants) -> None:
    await _seed(caas_layer, tenants)
    for model, tier in TIERS.items():
        tenant = getattr(tenants, model)
        raw = raw_collection(caas_layer, tenant, tier, "users")
        assert await raw.count_documents({"tenant_id": tenant}) == 3, model
        # tenant_id is stored the same way in every model
        assert await raw.count_documents({"tenant_id": {"$ne": tenant}}) == 0 or tier is Tier.FREE
    shared = caas_layer.client[f"{caas_layer.prefix}_shared"]
    assert await shared["users"].count_documents({"tenant_id": tenants.pro}) == 0
    assert await shared["users"].count_documents({"tenant_id": tenants.enterprise}) == 0
    names = await caas_layer.client.list_database_names()
    assert f"{caas_layer.prefix}_{tenants.enterprise}" in names
    assert f"{caas_layer.prefix}_{tenants.pro}" not in names


async def test_indexes_are_created_per_placement(caas_layer: DataLayer, tenants: Tenants) -> None:
    for model, tier in TIERS.items():
        tenant = getattr(tenants, model)
        info = await raw_collection(caas_layer, tenant, tier, "users").index_information()
        assert "tenant_external_id_unique" in info, model
        assert info["tenant_external_id_unique"]["key"][0] == ("tenant_id", 1)


@pytest.mark.parametrize("model", ["shared", "pro", "enterprise"])
async def test_get_by_id_of_another_tenant_finds_nothing(
    caas_layer: DataLayer, tenants: Tenants, model: str
) -> None:
    await _seed(caas_layer, tenants)
    victim = getattr(tenants, model)
    async with tenant_scope(victim):
        victim_user = await caas_layer.repo(UserRepository).get_by_external_id("u0")
    for attacker in tenants.all:
        if attacker == victim:
            continue
        async with tenant_scope(attacker):
            repo = caas_layer.repo(UserRepository)
            assert await repo.get_or_none(victim_user.id) is None
            assert await User.get(victim_user.id) is None
            assert not await repo.exists({"_id": victim_user.id})


async def test_provisioning_is_idempotent_and_refuses_tier_changes(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    from caas_data import TenantAlreadyProvisioned

    again = await caas_layer.tenants.provision(pro_tenant, tier=Tier.PRO)
    assert again.tier is Tier.PRO
    with pytest.raises(TenantAlreadyProvisioned):
        await caas_layer.tenants.provision(pro_tenant, tier=Tier.ENTERPRISE)
    assert (await caas_layer.tenants.get(pro_tenant)).tier is Tier.PRO
