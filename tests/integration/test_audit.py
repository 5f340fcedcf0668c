"""The audit trail: per-tenant hash chains that cannot fork and that show tampering."""

from __future__ import annotations

import asyncio

import pytest

from caas_data import (
    DataLayer,
    DuplicateError,
    Tier,
    UnsafeOperation,
    system_scope,
    tenant_scope,
)
from caas_data.documents.analytics import AUDIT_GENESIS_HASH, PLATFORM_AUDIT_TENANT, AuditLog
from caas_data.documents.base import utcnow
from caas_data.errors import TenantContextMissing, TenantMismatch
from caas_data.repositories.analytics.audit import AuditLogRepository
from caas_data.repositories.platform.api_keys import ApiKeyRepository, IssuedApiKey
from caas_data.testing import ServerHandle
from caas_data.testing.helpers import connect_for_tests

from .conftest import Tenants


def raw_audit(layer: DataLayer):  # type: ignore[no-untyped-def]
    return layer.client[f"{layer.prefix}_analytics"]["audit_logs"]


@pytest.mark.parametrize("model", ["shared", "pro", "enterprise"])
async def test_entries_chain_by_hash_and_sequence(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    async with tenant_scope(model_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        first = await audit.append("policy.changed", actor="admin:1", details={"k": "v"})
        second = await audit.append("api_key.created", target_type="api_keys", target_id="x")
        assert (first.seq, first.prev_hash) == (1, AUDIT_GENESIS_HASH)
        assert (second.seq, second.prev_hash) == (2, first.hash)
        assert second.created_at >= first.created_at
        report = await audit.verify_chain()
        assert report.ok and (report.checked, report.first_seq, report.last_seq) == (2, 1, 2)
        stored = [e.model_dump() for e in (await audit.trail()).items]
        assert stored == [first.model_dump(), second.model_dump()]


async def test_chains_are_per_tenant(caas_layer: DataLayer, tenants: Tenants) -> None:
    for tenant in tenants.all:
        async with tenant_scope(tenant):
            assert (await caas_layer.repo(AuditLogRepository).append("x.y")).seq == 1
    async with tenant_scope(tenants.pro):
        audit = caas_layer.repo(AuditLogRepository)
        assert [e.tenant_id for e in (await audit.trail()).items] == [tenants.pro]
        with pytest.raises(TenantMismatch):
            await audit.verify_chain(tenants.shared)
    async with system_scope():
        report = await caas_layer.repo(AuditLogRepository).verify_chain(tenants.enterprise)
        assert report.ok and report.checked == 1
        with pytest.raises(TenantContextMissing):
            await caas_layer.repo(AuditLogRepository).append("x.y")


async def test_fifty_concurrent_appends_never_fork_the_chain(
    caas_layer: DataLayer, shared_tenant: str, caas_server: ServerHandle
) -> None:
    # Two layers stand for two processes: within one, appends queue on a lock; between
    # them, only the unique (tenant_id, seq) index keeps the chain from forking.
    other = await connect_for_tests(caas_server.uri, database_prefix=caas_layer.prefix)
    try:

        async def append(layer: DataLayer, i: int) -> AuditLog:
            async with tenant_scope(shared_tenant, layer=layer):
                return await layer.repo(AuditLogRepository).append("load.test", details={"i": i})

        entries = await asyncio.gather(
            *(append(caas_layer if i % 2 else other, i) for i in range(50))
        )
    finally:
        await other.close()
    assert sorted(e.seq for e in entries) == list(range(1, 51))
    assert sorted(e.details["i"] for e in entries) == list(range(50))  # type: ignore[type-var]
    async with tenant_scope(shared_tenant):
        report = await caas_layer.repo(AuditLogRepository).verify_chain()
    assert report.ok and report.checked == 50


async def test_the_unique_sequence_refuses_a_second_entry_at_a_seq(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    async with tenant_scope(pro_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        first = await audit.append("x.y")
        fork = first.model_copy(update={"id": None, "action": "x.fork"})
        fork.hash = fork.compute_hash()
        with pytest.raises(DuplicateError):
            await audit.collection().insert_one(fork.model_dump(by_alias=True, exclude={"id"}))
        assert (await audit.verify_chain()).checked == 1


async def test_concurrent_audited_writes_in_transactions_keep_one_chain(
    caas_layer: DataLayer, enterprise_tenant: str, caas_server: ServerHandle
) -> None:
    # Each key and its entry commit together. Two layers (two processes): their transactions
    # conflict on the chain's next seq and re-run; within a layer they queue on a lock.
    other = await connect_for_tests(caas_server.uri, database_prefix=caas_layer.prefix)
    try:

        async def issue(layer: DataLayer, i: int) -> IssuedApiKey:
            async with tenant_scope(enterprise_tenant, layer=layer):
                return await layer.repo(ApiKeyRepository).issue(f"k{i}")

        issued = await asyncio.gather(
            *(issue(caas_layer if i % 2 else other, i) for i in range(20))
        )
    finally:
        await other.close()
    async with tenant_scope(enterprise_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        trail = (await audit.trail()).items
        assert [e.seq for e in trail] == list(range(1, 21))
        assert sorted(e.target_id for e in trail) == sorted(str(i.key.id) for i in issued)
        assert (await audit.verify_chain()).ok
        assert await caas_layer.repo(ApiKeyRepository).count() == 20


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("action", "nothing.happened", "does not match its hash"),
        ("details", {"scopes": ["*"]}, "does not match its hash"),
        ("actor", "someone-else", "does not match its hash"),
        ("action", "Not A Valid Action", "no longer fits the schema"),
    ],
)
async def test_a_modified_entry_is_reported(
    caas_layer: DataLayer, pro_tenant: str, field: str, value: object, reason: str
) -> None:
    async with tenant_scope(pro_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        for i in range(5):
            await audit.append("x.y", actor="admin:1", details={"i": i})
    # Tampering goes around the layer, straight to the database.
    await raw_audit(caas_layer).update_one(
        {"tenant_id": pro_tenant, "seq": 3}, {"$set": {field: value}}
    )
    async with tenant_scope(pro_tenant):
        report = await caas_layer.repo(AuditLogRepository).verify_chain()
    assert not report.ok
    assert report.broken_seq == 3 and report.checked == 2
    assert reason in (report.reason or "")


async def test_a_rehashed_forgery_breaks_the_next_link(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    async with tenant_scope(shared_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        for _ in range(4):
            await audit.append("x.y")
    raw = await raw_audit(caas_layer).find_one({"tenant_id": shared_tenant, "seq": 2})
    forged = AuditLog.model_validate({**raw, "action": "x.forged"})
    await raw_audit(caas_layer).update_one(
        {"_id": raw["_id"]}, {"$set": {"action": "x.forged", "hash": forged.compute_hash()}}
    )
    async with tenant_scope(shared_tenant):
        report = await caas_layer.repo(AuditLogRepository).verify_chain()
    assert report.broken_seq == 3
    assert "prev_hash does not match the hash of entry 2" in (report.reason or "")


async def test_a_removed_entry_is_reported(caas_layer: DataLayer, enterprise_tenant: str) -> None:
    async with tenant_scope(enterprise_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        for _ in range(4):
            await audit.append("x.y")
    await raw_audit(caas_layer).delete_one({"tenant_id": enterprise_tenant, "seq": 2})
    async with tenant_scope(enterprise_tenant):
        report = await caas_layer.repo(AuditLogRepository).verify_chain()
    assert report.broken_seq == 3 and "entries 2..2 are missing" in (report.reason or "")


async def test_entries_cannot_be_changed_through_the_layer(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    async with tenant_scope(shared_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        entry = await audit.append("x.y")
        with pytest.raises(UnsafeOperation, match="append-only"):
            await audit.collection().update_one({"seq": 1}, {"$set": {"action": "x.z"}})
        with pytest.raises(UnsafeOperation, match="append-only"):
            await audit.purge(entry.id)
        raw = await audit.collection().find_one({"seq": 1})
        assert "updated_at" not in raw and "__v" not in raw and "deleted_at" not in raw


async def test_retention_keeps_a_verifiable_chain(caas_layer: DataLayer, pro_tenant: str) -> None:
    async with tenant_scope(pro_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        for _ in range(2):
            await audit.append("x.old")
        await asyncio.sleep(0.01)
        cutoff = utcnow()
        await asyncio.sleep(0.01)
        for _ in range(2):
            await audit.append("x.new")
        assert await audit.purge_older_than(cutoff) == 2
        # Retention moved the anchor's start: the chain now begins at seq 3, linked to it.
        report = await audit.verify_chain()
        assert report.ok and (report.first_seq, report.last_seq, report.checked) == (3, 4, 2)
        assert (await audit.append("x.y")).seq == 5
        assert (await audit.verify_chain()).checked == 3


@pytest.mark.caas_isolated  # reads platform-wide state
async def test_platform_chain_is_written_from_a_system_scope(
    caas_layer: DataLayer, caas_tenant: object
) -> None:
    audit = caas_layer.repo(AuditLogRepository)
    entry = await audit.append("admin.created", tenant_id=PLATFORM_AUDIT_TENANT)
    assert entry.tenant_id == PLATFORM_AUDIT_TENANT and entry.seq == 1
    async with system_scope():
        assert (await audit.verify_chain(PLATFORM_AUDIT_TENANT)).ok
    tenant = await caas_tenant(tier=Tier.FREE)  # type: ignore[operator]
    async with tenant_scope(tenant):
        with pytest.raises(TenantMismatch, match="platform-wide"):
            await audit.append("admin.created", tenant_id=PLATFORM_AUDIT_TENANT)
        with pytest.raises(TenantMismatch):
            await audit.verify_chain(PLATFORM_AUDIT_TENANT)


async def test_reserved_ids_never_reach_tenant_owned_queries(
    caas_layer: DataLayer, tenants: Tenants
) -> None:
    from caas_data import InvalidTenantId
    from caas_data.repositories.billing.subscriptions import SubscriptionRepository
    from caas_data.repositories.security import IpAccessControl

    # The platform's chain id is reserved: it must not turn a tenant query into a global one.
    async with system_scope():
        with pytest.raises(InvalidTenantId, match="reserved"):
            await caas_layer.repo(SubscriptionRepository).get_current_or_none(
                tenant_id=PLATFORM_AUDIT_TENANT
            )
    with pytest.raises(InvalidTenantId, match="reserved"):
        await IpAccessControl(caas_layer).is_allowed(PLATFORM_AUDIT_TENANT, "10.0.0.1")
