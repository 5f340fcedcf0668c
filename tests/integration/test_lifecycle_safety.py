"""Tenant lifecycle operations are safe: run from the right scope, and a reused id starts clean.

Checked with the raw client (`layer.client`), never through the layer under test.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from caas_data import (
    DataLayer,
    DocumentValidationError,
    NotFoundError,
    TenantAlreadyProvisioned,
    TenantIdRetained,
    TenantMismatch,
    TenantNotFound,
    Tier,
    UnsafeOperation,
    system_scope,
    tenant_scope,
)
from caas_data.documents.analytics import PLATFORM_AUDIT_TENANT
from caas_data.fastapi import attach_layer, install_error_handlers, tenant_from_api_key
from caas_data.platform import (
    ApiKeyRepository,
    ApplicationRepository,
    ClientStatus,
    SaasClientRepository,
)
from caas_data.repositories.analytics.audit import AuditLogRepository
from caas_data.saas import UserRepository
from caas_data.testing import new_tenant_id

from .conftest import MODEL_TIERS, raw_collection


async def _tier_of(layer: DataLayer, tenant_id: str) -> Tier:
    entry = await _directory_entry(layer, tenant_id)
    assert entry is not None
    return Tier(entry["tier"])


async def _directory_entry(layer: DataLayer, tenant_id: str) -> dict[str, Any] | None:
    entries = layer.client[f"{layer.prefix}_platform"]["saas_clients"]
    return await entries.find_one({"tenant_id": tenant_id})


async def _digest(layer: DataLayer, tenant_id: str) -> tuple[Any, list[Any]]:
    """The tenant's directory entry and its users, read with the raw client."""
    users = raw_collection(layer, tenant_id, await _tier_of(layer, tenant_id), "users")
    rows = await users.find({"tenant_id": tenant_id}).sort("_id").to_list()
    return await _directory_entry(layer, tenant_id), rows


# -- 3. operator operations run only outside tenant scopes --------------------------------


async def test_lifecycle_operations_are_refused_inside_a_tenant_scope(
    caas_layer: DataLayer, shared_tenant: str, tenant: str
) -> None:
    a, b = shared_tenant, tenant
    for owner in (a, b):
        async with tenant_scope(owner):
            await caas_layer.repo(UserRepository).create(
                {"external_id": f"{owner}-1", "display_name": owner}
            )
    before = {t: await _digest(caas_layer, t) for t in (a, b)}
    newcomer = new_tenant_id("new")
    tier_of_b = await _tier_of(caas_layer, b)
    service = caas_layer.tenants

    async with tenant_scope(a):
        for call, target in [
            (lambda: service.deprovision(b, actor="ops:1"), b),
            (lambda: service.provision(b, tier=tier_of_b), b),
            (lambda: service.provision(newcomer, tier=Tier.FREE), newcomer),
            (lambda: service.deprovision(a), a),
            (lambda: service.provision(a, tier=Tier.FREE), a),
        ]:
            with pytest.raises(TenantMismatch, match=r"system_scope\(\)") as refused:
                await call()
            assert refused.value.tenant_id == a
            assert repr(target) in str(refused.value)
        placement = await service.placement(b)
        with pytest.raises(TenantMismatch):
            await service.ensure_collections(placement)

    assert {t: await _digest(caas_layer, t) for t in (a, b)} == before
    assert await _directory_entry(caas_layer, newcomer) is None


async def test_lifecycle_operations_run_in_a_system_scope(caas_layer: DataLayer) -> None:
    tenant = new_tenant_id("sys")
    async with system_scope():
        await caas_layer.tenants.provision(tenant, tier=MODEL_TIERS["shared"])
        assert (await _directory_entry(caas_layer, tenant)) is not None
        assert await caas_layer.tenants.deprovision(tenant, actor="ops:1") is True


# -- 4. a reused tenant id does not inherit its predecessor --------------------------------


def _key_app(layer: DataLayer) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/users", dependencies=[Depends(tenant_from_api_key())])
    async def users() -> int:
        return await layer.repo(UserRepository).count()

    attach_layer(app, layer)
    return app


async def _status_with_key(app: FastAPI, secret: str) -> int:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return (await http.get("/users", headers={"X-API-Key": secret})).status_code


async def _platform_rows(layer: DataLayer, tenant_id: str) -> dict[str, int]:
    """The tenant's API keys, applications and audit entries, counted with the raw client."""
    platform = layer.client[f"{layer.prefix}_platform"]
    audit = layer.client[f"{layer.prefix}_analytics"]["audit_logs"]
    where = {"tenant_id": tenant_id}
    return {
        "api_keys": await platform["api_keys"].count_documents(where),
        "applications": await platform["applications"].count_documents(where),
        "audit_logs": await audit.count_documents(where),
    }


async def test_a_reused_id_starts_clean_and_old_keys_stay_dead(
    caas_layer: DataLayer, tenant: str
) -> None:
    tier = await _tier_of(caas_layer, tenant)
    keys = caas_layer.repo(ApiKeyRepository)
    async with tenant_scope(tenant):
        app = await caas_layer.repo(ApplicationRepository).create({"name": "web"})
        old = await keys.issue("svc", scopes=["users"], application_id=app.id)
        await caas_layer.repo(UserRepository).create({"external_id": "u1", "display_name": "u"})
    http_app = _key_app(caas_layer)
    assert (await keys.authenticate(old.secret)).tenant_id == tenant
    assert await _status_with_key(http_app, old.secret) == 200

    assert await caas_layer.tenants.deprovision(tenant, actor="ops:1") is True

    # Credentials are gone before anything else could use them.
    with pytest.raises(NotFoundError):
        await keys.authenticate(old.secret)
    assert await _status_with_key(http_app, old.secret) == 401
    rows = await _platform_rows(caas_layer, tenant)
    assert rows["api_keys"] == rows["applications"] == 0
    assert rows["audit_logs"] >= 2  # the key's creation and the deprovisioning: records stay
    tombstone = await _directory_entry(caas_layer, tenant)
    assert tombstone is not None and tombstone["status"] == ClientStatus.DEPROVISIONED
    with pytest.raises(TenantNotFound):
        async with tenant_scope(tenant):
            await caas_layer.repo(UserRepository).count()
    with pytest.raises(TenantNotFound):  # the tombstone cannot be brought back to life
        await caas_layer.repo(SaasClientRepository).set_status(tenant, ClientStatus.ACTIVE)

    # Reusing the id is refused while it owns rows, and nothing changes.
    with pytest.raises(TenantIdRetained, match="audit_logs") as refused:
        await caas_layer.tenants.provision(tenant, tier=tier)
    assert isinstance(refused.value, TenantAlreadyProvisioned)
    assert f"{caas_layer.prefix}_platform.saas_clients" in refused.value.retained
    assert await _directory_entry(caas_layer, tenant) == tombstone
    assert await _platform_rows(caas_layer, tenant) == rows

    await caas_layer.tenants.provision(tenant, tier=tier, reuse_id="purge_retained", actor="ops:2")

    with pytest.raises(NotFoundError):
        await keys.authenticate(old.secret)
    assert await _status_with_key(http_app, old.secret) == 401
    assert await _platform_rows(caas_layer, tenant) == {
        "api_keys": 0,
        "applications": 0,
        "audit_logs": 0,
    }
    async with tenant_scope(tenant):
        assert await caas_layer.repo(UserRepository).count() == 0
        assert await caas_layer.repo(ApplicationRepository).count() == 0
        assert await keys.count() == 0
        assert (await caas_layer.repo(AuditLogRepository).trail()).items == []
        fresh = await keys.issue("new", scopes=["users"])
    assert await _status_with_key(http_app, fresh.secret) == 200
    audit = caas_layer.client[f"{caas_layer.prefix}_analytics"]["audit_logs"]
    purge = await audit.find_one(
        {
            "tenant_id": PLATFORM_AUDIT_TENANT,
            "target_id": tenant,
            "action": "tenant.retained_purged",
        }
    )
    assert purge is not None and purge["actor"] == "ops:2"
    # A live tenant provisioned again with its tier is only re-ensured, records or not.
    again = await caas_layer.tenants.provision(tenant, tier=tier)
    assert again.status is ClientStatus.ACTIVE and again.id is not None
    assert again.id == (await caas_layer.tenants.get(tenant)).id


async def test_stray_platform_rows_block_a_new_id_until_purged(caas_layer: DataLayer) -> None:
    tenant = new_tenant_id("stray")
    usage = caas_layer.client[f"{caas_layer.prefix}_billing"]["usage_records"]
    await usage.insert_one({"tenant_id": tenant, "metric": "messages", "quantity": 3})
    with pytest.raises(TenantIdRetained, match="usage_records \\(1\\)") as refused:
        await caas_layer.tenants.provision(tenant, tier=Tier.FREE)
    assert refused.value.retained == {f"{caas_layer.prefix}_billing.usage_records": 1}
    assert await _directory_entry(caas_layer, tenant) is None
    with pytest.raises(DocumentValidationError):
        await caas_layer.tenants.provision(tenant, tier=Tier.FREE, reuse_id="keep")  # type: ignore[arg-type]

    await caas_layer.tenants.provision(tenant, tier=Tier.FREE, reuse_id="purge_retained")
    assert await usage.count_documents({"tenant_id": tenant}) == 0
    assert await caas_layer.tenants.retained_rows(tenant) == {}  # a new free tenant owns nothing


async def test_an_interrupted_deprovisioning_is_not_routed_and_finishes_on_a_rerun(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    async with tenant_scope(shared_tenant):
        await caas_layer.repo(UserRepository).create({"external_id": "u", "display_name": "u"})
    entries = caas_layer.client[f"{caas_layer.prefix}_platform"]["saas_clients"]
    # As a run that stopped after retiring the entry leaves it.
    await entries.update_one({"tenant_id": shared_tenant}, {"$set": {"status": "deprovisioning"}})
    caas_layer.resolver.invalidate(shared_tenant)
    with pytest.raises(TenantNotFound):
        async with tenant_scope(shared_tenant):
            await caas_layer.repo(UserRepository).count()
    with pytest.raises(UnsafeOperation):
        await caas_layer.repo(SaasClientRepository).set_status(
            shared_tenant, ClientStatus.DEPROVISIONED
        )

    assert await caas_layer.tenants.deprovision(shared_tenant) is True
    users = raw_collection(caas_layer, shared_tenant, Tier.FREE, "users")
    assert await users.count_documents({"tenant_id": shared_tenant}) == 0
    entry = await _directory_entry(caas_layer, shared_tenant)
    assert entry is not None and entry["status"] == ClientStatus.DEPROVISIONED
    assert await caas_layer.tenants.deprovision(shared_tenant) is False
