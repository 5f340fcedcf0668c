"""API keys: shown once, stored as a hash, authenticated in constant time, rotated with grace."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from caas_data import (
    DataLayer,
    DocumentValidationError,
    NotFoundError,
    TenantContextMissing,
    system_scope,
    tenant_scope,
)
from caas_data.documents.base import utcnow
from caas_data.repositories.analytics.audit import AuditLogRepository
from caas_data.repositories.platform.api_keys import ApiKeyRepository, hash_api_key
from caas_data.repositories.platform.directory import ApplicationRepository

from .conftest import Tenants


def raw_keys(layer: DataLayer):  # type: ignore[no-untyped-def]
    return layer.client[f"{layer.prefix}_platform"]["api_keys"]


@pytest.mark.parametrize("model", ["shared", "pro", "enterprise"])
async def test_the_secret_is_shown_once_and_stored_only_as_a_hash(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    tenant = model_tenant
    async with tenant_scope(tenant):
        issued = await caas_layer.repo(ApiKeyRepository).issue("ci", scopes=["messages:write"])
    secret = issued.secret
    assert secret.startswith(f"caas_{issued.key.prefix}_") and len(secret) > 50
    assert secret not in repr(issued) and "secret=<hidden>" in repr(issued)
    stored = await raw_keys(caas_layer).find_one({"_id": issued.key.id})
    assert stored is not None and stored["tenant_id"] == tenant
    assert stored["key_hash"] == hash_api_key(secret) and stored["prefix"] == issued.key.prefix
    body = secret.split("_", 2)[2]
    assert secret not in str(stored) and body not in str(stored)
    async with tenant_scope(tenant):
        again = await caas_layer.repo(ApiKeyRepository).get(issued.key.id)
    assert secret not in again.model_dump_json() and not hasattr(again, "secret")


@pytest.mark.parametrize("model", ["shared", "pro", "enterprise"])
async def test_authenticate_returns_the_tenant_and_scopes(
    caas_layer: DataLayer, tenants: Tenants, model: str
) -> None:
    tenant = getattr(tenants, model)
    async with tenant_scope(tenant):
        app = await caas_layer.repo(ApplicationRepository).create({"name": "web"})
        issued = await caas_layer.repo(ApiKeyRepository).issue(
            "web", scopes=["messages", "users:read"], application_id=app.id
        )
    keys = caas_layer.repo(ApiKeyRepository)
    principal = await keys.authenticate(issued.secret)  # no scope: the tenant is not known yet
    assert principal.tenant_id == tenant and principal.key_id == issued.key.id
    assert principal.scopes == {"messages", "users:read"} and principal.application_id == app.id
    assert principal.allows("messages:write") and not principal.allows("users:write")
    other = next(t for t in tenants.all if t != tenant)
    async with tenant_scope(other):  # another tenant's scope does not see the key
        with pytest.raises(NotFoundError, match="unknown API key"):
            await keys.authenticate(issued.secret)


@pytest.mark.parametrize(
    "raw",
    ["", "garbage", "caas_abcdefghij12_" + "x" * 43, "Bearer caas_x", "caas_" + "a" * 80],
)
async def test_unknown_or_malformed_keys_are_refused(
    caas_layer: DataLayer, tenants: Tenants, raw: str
) -> None:
    with pytest.raises(NotFoundError, match="unknown API key"):
        await caas_layer.repo(ApiKeyRepository).authenticate(raw)


async def test_a_key_with_a_wrong_secret_is_refused(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    async with tenant_scope(shared_tenant):
        issued = await caas_layer.repo(ApiKeyRepository).issue("ci")
    forged = issued.secret[:-4] + ("AAAA" if not issued.secret.endswith("AAAA") else "BBBB")
    with pytest.raises(NotFoundError, match="unknown API key"):
        await caas_layer.repo(ApiKeyRepository).authenticate(forged)


async def test_revoked_and_expired_keys_are_refused_with_the_reason(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    keys = caas_layer.repo(ApiKeyRepository)
    async with tenant_scope(pro_tenant):
        revoked = await keys.issue("old")
        timed = await keys.issue("timed", expires_in=timedelta(minutes=5))
        first = await keys.revoke(revoked.key.id, actor="admin:7")
        assert first.revoked_at is not None
        assert (await keys.revoke(revoked.key.id)).revoked_at == first.revoked_at  # idempotent
    with pytest.raises(NotFoundError, match="was revoked"):
        await keys.authenticate(revoked.secret)
    assert (await keys.authenticate(timed.secret)).expires_at == timed.key.expires_at
    with pytest.raises(NotFoundError, match="expired at"):
        await keys.authenticate(timed.secret, now=utcnow() + timedelta(minutes=6))
    async with tenant_scope(pro_tenant):
        actions = [e.action for e in (await caas_layer.repo(AuditLogRepository).trail()).items]
    assert actions == ["api_key.created", "api_key.created", "api_key.revoked"]


async def test_last_used_is_written_at_most_once_per_minute(
    caas_layer: DataLayer, enterprise_tenant: str
) -> None:
    async with tenant_scope(enterprise_tenant):
        issued = await caas_layer.repo(ApiKeyRepository).issue("busy")
    keys = caas_layer.repo(ApiKeyRepository)
    start = utcnow()
    await asyncio.gather(*(keys.authenticate(issued.secret, now=start) for _ in range(50)))
    stored = await raw_keys(caas_layer).find_one({"_id": issued.key.id})
    assert stored["last_used_at"] == start and stored["__v"] == 1  # one write for 50 requests
    await keys.authenticate(issued.secret, now=start + timedelta(seconds=59))
    stored = await raw_keys(caas_layer).find_one({"_id": issued.key.id})
    assert stored["__v"] == 1 and stored["last_used_at"] == start
    later = start + timedelta(seconds=61)
    await keys.authenticate(issued.secret, now=later)
    stored = await raw_keys(caas_layer).find_one({"_id": issued.key.id})
    assert stored["__v"] == 2 and stored["last_used_at"] == later


async def test_rotation_keeps_both_keys_valid_for_the_grace_period(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    keys = caas_layer.repo(ApiKeyRepository)
    async with tenant_scope(shared_tenant):
        old = await keys.issue("ci", scopes=["messages"])
        new = await keys.rotate(old.key.id, grace=timedelta(hours=1), actor="admin:1")
        assert new.secret != old.secret and new.key.prefix != old.key.prefix
        assert new.key.scopes == ["messages"] and new.key.rotated_from == old.key.id
        stored_old = await keys.get(old.key.id)
        assert stored_old.replaced_by == new.key.id
        with pytest.raises(DocumentValidationError, match="already rotated"):
            await keys.rotate(old.key.id)
    now = utcnow()
    assert (await keys.authenticate(old.secret, now=now)).key_id == old.key.id
    assert (await keys.authenticate(new.secret, now=now)).key_id == new.key.id
    after_grace = now + timedelta(hours=2)
    with pytest.raises(NotFoundError, match="expired"):
        await keys.authenticate(old.secret, now=after_grace)
    assert (await keys.authenticate(new.secret, now=after_grace)).tenant_id == shared_tenant
    async with tenant_scope(shared_tenant):
        trail = (await caas_layer.repo(AuditLogRepository).trail()).items
    assert [e.action for e in trail] == ["api_key.created", "api_key.rotated", "api_key.created"]
    assert trail[1].details == {"replaced_by": str(new.key.id)}
    assert {e.actor for e in trail[1:]} == {"admin:1"}


async def test_rotation_never_extends_an_earlier_expiry(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    keys = caas_layer.repo(ApiKeyRepository)
    async with tenant_scope(pro_tenant):
        old = await keys.issue("short", expires_in=timedelta(minutes=10))
        new = await keys.rotate(old.key.id, grace=timedelta(days=1))
        assert (await keys.get(old.key.id)).expires_at == old.key.expires_at
        assert new.key.expires_at == old.key.expires_at
        revoked = await keys.issue("gone")
        await keys.revoke(revoked.key.id)
        with pytest.raises(DocumentValidationError, match="is revoked"):
            await keys.rotate(revoked.key.id)


@pytest.mark.caas_isolated  # reads platform-wide state
async def test_keys_belong_to_one_tenant_and_its_applications(
    caas_layer: DataLayer, tenants: Tenants
) -> None:
    async with tenant_scope(tenants.pro):
        theirs = await caas_layer.repo(ApplicationRepository).create({"name": "mobile"})
    async with tenant_scope(tenants.shared):
        keys = caas_layer.repo(ApiKeyRepository)
        with pytest.raises(NotFoundError, match="not an application of tenant"):
            await keys.issue("x", application_id=theirs.id)
        await keys.issue("mine")
        assert [k.name for k in (await keys.find()).items] == ["mine"]
    async with system_scope():
        keys = caas_layer.repo(ApiKeyRepository)
        with pytest.raises(TenantContextMissing):
            await keys.issue("nobody's")
        issued = await keys.issue("ops", tenant_id=tenants.enterprise, actor="admin:2")
        assert issued.key.tenant_id == tenants.enterprise
        assert await keys.count() == 2
    async with tenant_scope(tenants.enterprise):
        trail = (await caas_layer.repo(AuditLogRepository).trail()).items
    assert [(e.action, e.actor) for e in trail] == [("api_key.created", "admin:2")]


async def test_generic_writes_of_keys_are_audited_too(
    caas_layer: DataLayer, enterprise_tenant: str
) -> None:
    async with tenant_scope(enterprise_tenant):
        keys = caas_layer.repo(ApiKeyRepository)
        issued = await keys.issue("ci")
        renamed = await keys.update(issued.key, name="ci-2", actor="admin:3")
        assert renamed.name == "ci-2"
        await keys.delete(renamed, actor="admin:3")
        with pytest.raises(NotFoundError):
            await keys.get(issued.key.id)
        audit = caas_layer.repo(AuditLogRepository)
        trail = (await audit.trail()).items
        assert [e.action for e in trail] == [
            "api_key.created",
            "api_key.updated",
            "api_key.deleted",
        ]
        assert trail[1].details == {"fields": ["name"]}
        assert (await audit.verify_chain()).ok


async def test_a_fastapi_app_authenticates_requests_with_the_keys(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    import httpx
    from fastapi import Depends, FastAPI

    from caas_data import current_tenant_id
    from caas_data.fastapi import Principal, attach_layer, tenant_from_api_key

    async def authenticate(layer: DataLayer, raw_key: str) -> Principal:
        found = await layer.repo(ApiKeyRepository).authenticate(raw_key)
        return Principal(found.tenant_id, found.scopes, str(found.key_id))

    app = FastAPI()
    attach_layer(app, caas_layer)
    needs_write = Depends(
        tenant_from_api_key(authenticate, required_scopes=frozenset({"messages:write"}))
    )

    @app.get("/whoami")
    async def whoami(principal: Principal = needs_write) -> dict[str, str | None]:
        return {"tenant": current_tenant_id(), "key": principal.key_id}

    async with tenant_scope(pro_tenant):
        keys = caas_layer.repo(ApiKeyRepository)
        writer = await keys.issue("writer", scopes=["messages:write"])
        reader = await keys.issue("reader", scopes=["messages:read"])
        revoked = await keys.issue("revoked", scopes=["messages:write"])
        await keys.revoke(revoked.key.id)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        ok = await http.get("/whoami", headers={"Authorization": f"Bearer {writer.secret}"})
        assert ok.status_code == 200
        assert ok.json() == {"tenant": pro_tenant, "key": str(writer.key.id)}
        assert (await http.get("/whoami", headers={"X-API-Key": reader.secret})).status_code == 403
        for raw in (revoked.secret, writer.secret[:-2] + "xx", "nonsense"):
            assert (await http.get("/whoami", headers={"X-API-Key": raw})).status_code == 401
