"""Security: CIDR allow/block lists answer is_allowed; typed policies with platform defaults."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from caas_data import (
    DataLayer,
    DocumentValidationError,
    DuplicateError,
    NotFoundError,
    system_scope,
    tenant_scope,
)
from caas_data.documents.analytics import PLATFORM_AUDIT_TENANT
from caas_data.documents.base import utcnow
from caas_data.documents.security import (
    IpPolicy,
    PasswordPolicy,
    PolicyKind,
    RateLimitPolicy,
    SessionPolicy,
)
from caas_data.repositories.analytics.audit import AuditLogRepository
from caas_data.repositories.security import (
    BlockedIpRepository,
    IpAccessControl,
    IpWhitelistRepository,
    SecurityPolicyRepository,
)

from .conftest import Tenants


@pytest.mark.parametrize("model", ["shared", "pro", "enterprise"])
async def test_cidr_matching_for_ipv4_and_ipv6(
    caas_layer: DataLayer, tenants: Tenants, model: str
) -> None:
    tenant = getattr(tenants, model)
    access = IpAccessControl(caas_layer)
    assert await access.is_allowed(tenant, "203.0.113.9")  # no lists: open
    async with tenant_scope(tenant):
        allow = caas_layer.repo(IpWhitelistRepository)
        await allow.allow("10.0.0.0/8", description="office VPN", actor="admin:1")
        await allow.allow("192.0.2.10")
        await allow.allow("2001:db8::/32")
        with pytest.raises(DuplicateError):
            await allow.allow("10.0.0.0/8")
    cases = {
        "10.0.0.0": True,
        "10.255.255.255": True,
        "10.1.2.3": True,
        "11.0.0.0": False,
        "9.255.255.255": False,
        "192.0.2.10": True,
        "192.0.2.11": False,
        "2001:db8::1": True,
        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff": True,
        "2001:db9::1": False,
        "::ffff:10.9.8.7": True,  # IPv4-mapped IPv6 is read as IPv4
        "::a00:1": False,  # same bits as 10.0.0.1, but an IPv6 address
    }
    assert {ip: await access.is_allowed(tenant, ip) for ip in cases} == cases
    decision = await access.check(tenant, "10.1.2.3")
    assert (decision.allowed, decision.reason, decision.rule) == (
        True,
        "allow-listed",
        "10.0.0.0/8",
    )
    other = next(t for t in tenants.all if t != tenant)
    assert await access.is_allowed(other, "11.0.0.0")  # the lists are per tenant


async def test_blocks_win_and_can_expire(caas_layer: DataLayer, pro_tenant: str) -> None:
    access = IpAccessControl(caas_layer)
    async with tenant_scope(pro_tenant):
        await caas_layer.repo(IpWhitelistRepository).allow("10.0.0.0/8")
        blocks = caas_layer.repo(BlockedIpRepository)
        await blocks.block("10.6.0.0/16", reason="abuse")
        timed = await blocks.block("2001:db8::1", reason="scan", duration=timedelta(minutes=10))
    assert timed.expires_at is not None
    decision = await access.check(pro_tenant, "10.6.1.1")
    assert (decision.allowed, decision.reason, decision.rule) == (False, "blocked", "10.6.0.0/16")
    assert await access.is_allowed(pro_tenant, "10.7.1.1")
    assert not await access.is_allowed(pro_tenant, "2001:db8::1")  # blocked, and not allowed
    later = utcnow() + timedelta(minutes=11)
    assert (await access.check(pro_tenant, "2001:db8::1", now=later)).reason != "blocked"
    async with tenant_scope(pro_tenant):
        blocks = caas_layer.repo(BlockedIpRepository)
        # Blocking again replaces the reason and expiry rather than failing.
        again = await blocks.block(
            "10.6.0.0/16", reason="abuse, confirmed", duration=timedelta(hours=1)
        )
        assert again.id == (await blocks.get_by_cidr("10.6.0.0/16")).id and again.expires_at
        await blocks.delete_by_cidr("10.6.0.0/16", actor="admin:2")
        with pytest.raises(NotFoundError):
            await blocks.delete_by_cidr("10.6.0.0/16")
    assert await access.is_allowed(pro_tenant, "10.6.1.1")


async def test_blocks_expire_by_ttl_index(caas_layer: DataLayer) -> None:
    indexes = await caas_layer.client[f"{caas_layer.prefix}_platform"][
        "blocked_ips"
    ].index_information()
    assert indexes["ttl_expires_at"]["key"] == [("expires_at", 1)]
    assert indexes["ttl_expires_at"]["expireAfterSeconds"] == 0


async def test_bad_addresses_are_clear_errors(caas_layer: DataLayer, shared_tenant: str) -> None:
    access = IpAccessControl(caas_layer)
    with pytest.raises(DocumentValidationError, match="not an IPv4 or IPv6 address") as caught:
        await access.is_allowed(shared_tenant, "10.0.0.300")
    assert caught.value.fields == ("ip",)
    async with tenant_scope(shared_tenant):
        with pytest.raises(DocumentValidationError, match=re.escape("did you mean 10.0.0.0/8")):
            await caas_layer.repo(IpWhitelistRepository).allow("10.1.2.3/8")
        with pytest.raises(DocumentValidationError, match="duration must be positive"):
            await caas_layer.repo(BlockedIpRepository).block("10.0.0.1", duration=timedelta(0))


async def test_the_ip_policy_can_turn_the_allow_list_off(
    caas_layer: DataLayer, enterprise_tenant: str
) -> None:
    access = IpAccessControl(caas_layer)
    async with tenant_scope(enterprise_tenant):
        await caas_layer.repo(IpWhitelistRepository).allow("10.0.0.0/8")
        assert not await access.is_allowed(enterprise_tenant, "8.8.8.8")
        await caas_layer.repo(SecurityPolicyRepository).set(IpPolicy(enforce_whitelist=False))
        assert await access.is_allowed(enterprise_tenant, "8.8.8.8")
        await caas_layer.repo(BlockedIpRepository).block("8.8.8.8")
        assert not await access.is_allowed(enterprise_tenant, "8.8.8.8")  # blocks still win
        trail = (await caas_layer.repo(AuditLogRepository).trail()).items
    assert [e.action for e in trail] == [
        "ip_whitelist.created",
        "security_policy.updated",
        "blocked_ip.blocked",
    ]
    assert trail[0].details == {"cidr": "10.0.0.0/8"}


@pytest.mark.caas_isolated  # reads platform-wide state
async def test_policies_fall_back_to_platform_defaults_then_built_ins(
    caas_layer: DataLayer, tenants: Tenants
) -> None:
    policies = caas_layer.repo(SecurityPolicyRepository)
    async with tenant_scope(tenants.shared):
        assert await policies.get_effective(PolicyKind.PASSWORD) == PasswordPolicy()
    await policies.set_platform_default(PasswordPolicy(min_length=14), actor="admin:1")
    async with tenant_scope(tenants.shared):
        assert (await policies.get_effective(PolicyKind.PASSWORD)).min_length == 14  # type: ignore[union-attr]
        own = await policies.set(PasswordPolicy(min_length=20, require_symbol=True), actor="owner")
        assert own.kind is PolicyKind.PASSWORD and own.updated_by == "owner"
        effective = await policies.get_effective(PolicyKind.PASSWORD)
        assert isinstance(effective, PasswordPolicy) and effective.min_length == 20
        updated = await policies.set(PasswordPolicy(min_length=16))
        assert updated.id == own.id and updated.version == 1
        assert isinstance(await policies.get_effective(PolicyKind.SESSION), SessionPolicy)
        await policies.set(RateLimitPolicy(requests_per_minute=120))
        assert await policies.count() == 2
    async with tenant_scope(tenants.pro):  # other tenants still get the platform default
        assert (await policies.get_effective(PolicyKind.PASSWORD)).min_length == 14  # type: ignore[union-attr]
    async with tenant_scope(tenants.shared):
        assert await policies.reset(PolicyKind.PASSWORD, actor="owner")
        assert not await policies.reset(PolicyKind.PASSWORD)
        assert (await policies.get_effective(PolicyKind.PASSWORD)).min_length == 14  # type: ignore[union-attr]
        trail = (await caas_layer.repo(AuditLogRepository).trail()).items
    assert [e.action for e in trail] == [
        "security_policy.updated",
        "security_policy.updated",
        "security_policy.updated",
        "security_policy.deleted",
    ]
    assert trail[0].details["settings"]["min_length"] == 20  # type: ignore[index,call-overload]
    async with system_scope():
        platform = (
            await caas_layer.repo(AuditLogRepository).trail(tenant_id=PLATFORM_AUDIT_TENANT)
        ).items
    assert [(e.action, e.actor) for e in platform] == [("security_policy.updated", "admin:1")]
    with pytest.raises(DocumentValidationError, match="settings must be"):
        async with tenant_scope(tenants.pro):
            await policies.set({"kind": "password"})  # type: ignore[arg-type]
