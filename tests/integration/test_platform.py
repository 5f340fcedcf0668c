"""Platform: the 15 platform-wide collections and their indexes, applications, admins and the
tenant directory's audited changes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher

from caas_data import (
    DataLayer,
    DocumentValidationError,
    DuplicateError,
    NotFoundError,
    TenantMismatch,
    TenantNotFound,
    Tier,
    system_scope,
    tenant_scope,
)
from caas_data.documents.analytics import PLATFORM_AUDIT_TENANT
from caas_data.documents.platform import AdminRole, AdminStatus, ApplicationStatus
from caas_data.platform import ClientStatus
from caas_data.repositories.analytics.audit import AuditLogRepository
from caas_data.repositories.platform.directory import (
    ApplicationRepository,
    PlatformAdminRepository,
    SaasClientRepository,
)

from .conftest import Tenants

COLLECTIONS = {
    "platform": {
        "saas_clients",
        "applications",
        "api_keys",
        "platform_admins",
        "ip_whitelist",
        "blocked_ips",
        "security_policies",
    },
    "billing": {"plans", "subscriptions", "invoices", "payment_methods", "usage_records"},
    "analytics": {"events", "metrics", "audit_logs", "audit_anchors"},
}
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_password_hashing() -> Iterator[None]:
    """Cheap argon2 parameters for tests (the production default is checked separately)."""
    default = PlatformAdminRepository.password_hasher
    PlatformAdminRepository.password_hasher = PasswordHasher(
        time_cost=1, memory_cost=1024, parallelism=1
    )
    try:
        yield
    finally:
        PlatformAdminRepository.password_hasher = default


async def test_all_collections_exist_with_their_indexes(caas_layer: DataLayer) -> None:
    for area, expected in COLLECTIONS.items():
        database = caas_layer.client[f"{caas_layer.prefix}_{area}"]
        assert expected <= set(await database.list_collection_names()), area
    seen: dict[str, dict[str, Any]] = {}
    for area, names in COLLECTIONS.items():
        for name in names:
            info = await caas_layer.client[f"{caas_layer.prefix}_{area}"][name].index_information()
            seen[name] = {index: spec["key"] for index, spec in info.items()}
    # The seed's rule for high-volume collections.
    for name in ("events", "usage_records", "audit_logs"):
        assert [("tenant_id", 1), ("created_at", -1)] in seen[name].values(), name
    # Tenant-owned collections lead their compound indexes with tenant_id (api_keys' global
    # prefix lookup is the one exception: it runs before the tenant is known).
    owned = COLLECTIONS["billing"] | COLLECTIONS["analytics"] | {
        "applications", "api_keys", "ip_whitelist", "blocked_ips", "security_policies"
    } - {"plans"}  # fmt: skip
    for name in owned - {"plans"}:
        for index, keys in seen[name].items():
            if len(keys) > 1:
                assert keys[0][0] == "tenant_id", (name, index)
    assert seen["api_keys"]["prefix_unique"] == [("prefix", 1)]
    assert seen["audit_logs"]["tenant_seq_unique"] == [("tenant_id", 1), ("seq", 1)]
    assert seen["subscriptions"]["tenant_one_active"] == [("tenant_id", 1)]
    assert seen["invoices"]["tenant_number_unique"] == [("tenant_id", 1), ("number", 1)]


@pytest.mark.caas_isolated  # reads platform-wide state
@pytest.mark.parametrize("model", ["shared", "pro", "enterprise"])
async def test_applications_belong_to_one_client(
    caas_layer: DataLayer, tenants: Tenants, model: str
) -> None:
    tenant = getattr(tenants, model)
    async with tenant_scope(tenant):
        apps = caas_layer.repo(ApplicationRepository)
        web = await apps.create({"name": "web", "allowed_origins": ["https://acme.test"]})
        with pytest.raises(DuplicateError):
            await apps.create({"name": "web"})
        with pytest.raises(TenantMismatch):
            await apps.update(web, tenant_id="someone-else")
        disabled = await apps.set_status(web.id, ApplicationStatus.DISABLED)
        assert disabled.status is ApplicationStatus.DISABLED
    for other in tenants.all:
        if other == tenant:
            continue
        async with tenant_scope(other):
            apps = caas_layer.repo(ApplicationRepository)
            assert await apps.get_or_none(web.id) is None
            assert (await apps.create({"name": "web"})).tenant_id == other  # names are per client
            with pytest.raises(NotFoundError):
                await apps.get(web.id)
    async with system_scope():
        assert await caas_layer.repo(ApplicationRepository).count({"name": "web"}) == 3


@pytest.mark.caas_isolated  # reads platform-wide state
async def test_admin_passwords_are_stored_as_argon2_hashes(caas_layer: DataLayer) -> None:
    admins = caas_layer.repo(PlatformAdminRepository)
    admin = await admins.register(
        "Ops@CAAS.test", PASSWORD, display_name="Ops", roles=[AdminRole.ADMIN], actor="bootstrap"
    )
    raw = await caas_layer.client[f"{caas_layer.prefix}_platform"]["platform_admins"].find_one(
        {"_id": admin.id}
    )
    assert raw["email"] == "ops@caas.test"
    assert raw["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in str(raw) and "password" not in {k for k in raw if k != "password_hash"}
    assert PASSWORD not in repr(admin) and "password_hash" not in repr(admin)
    signed_in = await admins.authenticate("OPS@caas.test", PASSWORD)
    assert signed_in.id == admin.id and signed_in.last_login_at is not None
    with pytest.raises(DuplicateError):
        await admins.register("ops@caas.test", PASSWORD, display_name="x", roles=["admin"])
    with pytest.raises(DocumentValidationError, match="at least 12 characters"):
        await admins.register("b@caas.test", "short", display_name="B", roles=["admin"])
    with pytest.raises(DocumentValidationError, match="argon2, bcrypt or scrypt hash"):
        await admins.create({"email": "c@caas.test", "display_name": "C", "roles": ["admin"],
                             "password_hash": "a-plain-text-password-by-mistake"})  # fmt: skip


@pytest.mark.caas_isolated  # reads platform-wide state
async def test_wrong_unknown_and_disabled_sign_ins_look_the_same(caas_layer: DataLayer) -> None:
    admins = caas_layer.repo(PlatformAdminRepository)
    admin = await admins.register("ops@caas.test", PASSWORD, display_name="Ops", roles=["admin"])
    for email, password in (("ops@caas.test", "wrong password!"), ("nobody@caas.test", PASSWORD)):
        with pytest.raises(NotFoundError, match=r"^invalid email or password"):
            await admins.authenticate(email, password)
    await admins.set_status(admin.id, AdminStatus.DISABLED, actor="admin:root")
    with pytest.raises(NotFoundError, match=r"^invalid email or password"):
        await admins.authenticate("ops@caas.test", PASSWORD)


@pytest.mark.caas_isolated  # reads platform-wide state
async def test_sign_in_upgrades_an_outdated_hash(caas_layer: DataLayer) -> None:
    admins = caas_layer.repo(PlatformAdminRepository)
    admin = await admins.register("ops@caas.test", PASSWORD, display_name="Ops", roles=["admin"])
    assert "t=1," in admin.password_hash
    PlatformAdminRepository.password_hasher = PasswordHasher(
        time_cost=2, memory_cost=1024, parallelism=1
    )
    upgraded = await admins.authenticate("ops@caas.test", PASSWORD)
    assert "t=2," in upgraded.password_hash
    assert (await admins.authenticate("ops@caas.test", PASSWORD)).id == admin.id


def test_the_default_hasher_uses_the_recommended_parameters() -> None:
    from argon2 import Type, profiles

    default = PasswordHasher()
    assert default.type is Type.ID
    assert default.memory_cost >= profiles.RFC_9106_LOW_MEMORY.memory_cost


@pytest.mark.caas_isolated  # reads platform-wide state
async def test_admin_changes_are_audited_in_the_platform_chain(caas_layer: DataLayer) -> None:
    admins = caas_layer.repo(PlatformAdminRepository)
    admin = await admins.register("ops@caas.test", PASSWORD, display_name="Ops", roles=["support"])
    promoted = await admins.set_roles(admin.id, [AdminRole.ADMIN, AdminRole.BILLING], actor="root")
    assert promoted.roles == [AdminRole.ADMIN, AdminRole.BILLING]
    await admins.set_password(admin.id, PASSWORD + "!", actor="root")
    assert (await admins.authenticate("ops@caas.test", PASSWORD + "!")).id == admin.id
    current = await admins.get(admin.id)
    await admins.update(current, display_name="Operations", actor="root")
    async with system_scope():
        audit = caas_layer.repo(AuditLogRepository)
        trail = (await audit.trail(tenant_id=PLATFORM_AUDIT_TENANT)).items
        assert (await audit.verify_chain(PLATFORM_AUDIT_TENANT)).ok
    assert [e.action for e in trail] == [
        "admin.created",
        "admin.roles_changed",
        "admin.password_changed",
        "admin.updated",
    ]
    assert trail[1].details == {"before": ["support"], "after": ["admin", "billing"]}
    assert all(e.target_id == str(admin.id) for e in trail)
    assert PASSWORD not in str([e.model_dump() for e in trail])


async def test_directory_changes_are_audited_and_seen_at_once(
    caas_layer: DataLayer, tenants: Tenants
) -> None:
    clients = caas_layer.repo(SaasClientRepository)
    async with system_scope():
        suspended = await clients.set_status(tenants.pro, ClientStatus.SUSPENDED, actor="root")
        assert suspended.status is ClientStatus.SUSPENDED
        pending = await clients.request_tier_change(Tier.ENTERPRISE, tenant_id=tenants.pro)
        assert pending.pending_tier is Tier.ENTERPRISE and pending.tier is Tier.PRO
        assert (await clients.request_tier_change("enterprise", tenant_id=tenants.pro)).version == 2
        with pytest.raises(TenantNotFound):
            await clients.get_by_tenant_id("never-provisioned")
    assert (await caas_layer.tenants.get(tenants.pro)).pending_tier is Tier.ENTERPRISE
    assert (await caas_layer.tenants.placement(tenants.pro)).tier is Tier.PRO
    async with tenant_scope(tenants.shared):
        with pytest.raises(TenantMismatch):
            await clients.request_tier_change(Tier.PRO, tenant_id=tenants.pro)
    async with tenant_scope(tenants.pro):
        trail = (await caas_layer.repo(AuditLogRepository).trail()).items
    assert [(e.action, e.details) for e in trail] == [
        ("tenant.status_suspended", {"status": "suspended"}),
        ("tenant.tier_change_requested", {"pending_tier": "enterprise"}),
    ]
