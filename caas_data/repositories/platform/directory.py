"""Platform repositories: the tenant directory, client applications and platform admins.

API keys have their own module (`caas_data.repositories.platform.api_keys`).
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from caas_data.documents.base import utcnow
from caas_data.documents.platform import (
    RETIRED_CLIENT_STATUSES,
    AdminRole,
    AdminStatus,
    Application,
    ApplicationStatus,
    ClientStatus,
    PlatformAdmin,
    SaasClient,
)
from caas_data.errors import (
    DocumentValidationError,
    NotFoundError,
    TenantMismatch,
    TenantNotFound,
    UnsafeOperation,
    optional_dependency,
)
from caas_data.repositories.audited import AuditedRepository
from caas_data.repositories.base import Repository
from caas_data.repositories.owned import owned_scope, scope_tenant
from caas_data.tenancy.context import current_scope
from caas_data.tenancy.ids import validate_tenant_id
from caas_data.tenancy.tiers import Tier

if TYPE_CHECKING:
    from argon2 import PasswordHasher

__all__ = [
    "MIN_ADMIN_PASSWORD_LENGTH",
    "ApplicationRepository",
    "PlatformAdminRepository",
    "SaasClientRepository",
]

MIN_ADMIN_PASSWORD_LENGTH = 12


def _plain(value: Any) -> str | None:
    """An enum or None as it appears in an audit entry."""
    return None if value is None else str(value)


class SaasClientRepository(AuditedRepository[SaasClient]):
    """The tenant directory (`saas_clients`). Provision tenants with `layer.tenants`.

    Status and tier changes are audited in the tenant's own chain, and the resolver's cached
    entry is dropped so the change is seen at once.
    """

    document_type = SaasClient
    audit_target = "tenant"

    async def get_by_tenant_id(self, tenant_id: str) -> SaasClient:
        """The directory entry of a tenant; `TenantNotFound` if it is not provisioned.

        A deprovisioned tenant's tombstone is not found: it must not be changed back to life.
        """
        validate_tenant_id(tenant_id)
        client = await self.find_one(
            {"tenant_id": tenant_id, "status": {"$nin": sorted(RETIRED_CLIENT_STATUSES)}}
        )
        if client is None:
            raise TenantNotFound("tenant is not provisioned", tenant_id=tenant_id)
        return client

    async def _set(
        self, tenant_id: str, action: str, actor: str | None, **changes: Any
    ) -> SaasClient:
        """Apply `changes` to the entry and audit `action` with them, atomically."""

        async def write() -> SaasClient:
            client = await self.get_by_tenant_id(tenant_id)
            # The directory is read-only to tenant scopes; these audited transitions are the
            # layer's own writes (the generic `update` stays refused there).
            return await self._apply_update(client, changes, privileged=True)

        async with owned_scope(self._layer, tenant_id):
            try:
                return await self._audited(
                    write,
                    lambda c: self._record(action, c, **{k: _plain(v) for k, v in changes.items()}),
                    actor=actor,
                )
            finally:
                self._layer.resolver.invalidate(tenant_id)

    async def request_tier_change(
        self, tier: Tier | str, *, tenant_id: str | None = None, actor: str | None = None
    ) -> SaasClient:
        """Record that the tenant should move to `tier`: a pending move.

        `pending_tier` shows the request; asking for the current tier clears it. The operator
        (or a job) carries it out with `layer.tenants.move_pending()`, which moves the data
        online and clears `pending_tier` when the directory switches.
        """
        tenant = scope_tenant(tenant_id)
        wanted = Tier(tier)
        current = await self.get_by_tenant_id(tenant)
        pending = None if wanted is current.tier else wanted
        if pending == current.pending_tier:
            return current
        action = "tier_change_requested" if pending is not None else "tier_change_cancelled"
        return await self._set(tenant, action, actor, pending_tier=pending)

    async def set_status(
        self, tenant_id: str, status: ClientStatus, *, actor: str | None = None
    ) -> SaasClient:
        """Suspend or re-activate a tenant (audited); the platform's call, never a tenant's.

        Raises:
            TenantMismatch: called inside a tenant scope.
            UnsafeOperation: `status` is a deprovisioning status (only
                `layer.tenants.deprovision` sets those, after removing the tenant's data).
        """
        scope = current_scope()
        if scope is not None and scope.tenant_id is not None:
            raise TenantMismatch(
                "a tenant's status is set by the platform: call set_status outside tenant "
                "scopes (or in `system_scope()`)",
                tenant_id=scope.tenant_id,
            )
        status = ClientStatus(status)
        if status in RETIRED_CLIENT_STATUSES:
            raise UnsafeOperation(
                f"status {status.value!r} is set by `layer.tenants.deprovision`, not directly",
                tenant_id=tenant_id,
                document_type=SaasClient,
            )
        current = await self.get_by_tenant_id(tenant_id)
        if current.status is status:
            return current
        return await self._set(tenant_id, f"status_{status.value}", actor, status=status)


class ApplicationRepository(Repository[Application]):
    """A client's applications; each belongs to exactly one client (the scope's tenant)."""

    document_type = Application

    async def get_by_name(self, name: str) -> Application:
        """The application called `name`; `NotFoundError` if none."""
        found = await self.find_one({"name": name})
        if found is None:
            raise NotFoundError(f"no application named {name!r}", document_type=Application)
        return found

    async def set_status(self, application_id: Any, status: ApplicationStatus) -> Application:
        """Enable or disable an application."""
        application = await self.get(application_id)
        if application.status is ApplicationStatus(status):
            return application
        return await self.update(application, status=ApplicationStatus(status))


_ARGON2_FEATURE = "PlatformAdminRepository (admin password hashing)"


@functools.cache
def _default_password_hasher() -> PasswordHasher:
    """argon2id with the library's recommended parameters (RFC 9106, low-memory profile)."""
    # Imported on first use: argon2 comes with the `security` extra, and `import caas_data`
    # must work without it.
    with optional_dependency("argon2", extra="security", feature=_ARGON2_FEATURE):
        from argon2 import PasswordHasher

    return PasswordHasher()


class _DefaultPasswordHasher:
    """Class attribute that builds the default hasher on first read, not at import."""

    def __get__(self, instance: object, owner: type[Any] | None = None) -> PasswordHasher:
        return _default_password_hasher()


@functools.cache
def _dummy_password_hash(hasher: PasswordHasher) -> str:
    """Verified against when the email is unknown, so both failures take the same time."""
    return hasher.hash(secrets.token_hex(16))


def _check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_ADMIN_PASSWORD_LENGTH:
        raise DocumentValidationError(
            f"admin passwords need at least {MIN_ADMIN_PASSWORD_LENGTH} characters",
            fields=("password",),
            document_type=PlatformAdmin,
        )


class PlatformAdminRepository(AuditedRepository[PlatformAdmin]):
    """CAAS staff accounts: argon2id password hashes, roles; audited in the platform chain."""

    document_type = PlatformAdmin
    audit_target = "admin"

    password_hasher = _DefaultPasswordHasher()
    """argon2id with the library's recommended parameters (RFC 9106, low-memory profile).

    Assign an `argon2.PasswordHasher` to the class to change them. Reading it without the
    `security` extra raises `MissingDependencyError`.
    """

    async def _hash(self, password: str) -> str:
        # argon2 takes tens of milliseconds of CPU on purpose: keep it off the event loop.
        return await asyncio.to_thread(self.password_hasher.hash, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        hasher = self.password_hasher  # first: a missing `security` extra is named as such
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            return await asyncio.to_thread(hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def register(
        self,
        email: str,
        password: str,
        *,
        display_name: str,
        roles: Iterable[AdminRole],
        actor: str | None = None,
    ) -> PlatformAdmin:
        """Create an admin; only the argon2id hash of `password` is stored."""
        _check_password(password)
        document = self._validate(
            {
                "email": email,
                "display_name": display_name,
                "roles": list(roles),
                "password_hash": await self._hash(password),
            }
        )
        async with owned_scope(self._layer):
            return await self.create(document, actor=actor)

    async def get_by_email(self, email: str) -> PlatformAdmin:
        """The admin with this email (case-insensitive); `NotFoundError` if none."""
        found = await self.find_one({"email": email.strip().lower()})
        if found is None:
            raise NotFoundError(f"no admin with email {email!r}", document_type=PlatformAdmin)
        return found

    async def authenticate(self, email: str, password: str) -> PlatformAdmin:
        """The admin if `password` is right and the account active.

        Also upgrades the stored hash when the hashing parameters have changed.

        Raises:
            NotFoundError: unknown email, wrong password or disabled account (one message, so
                a caller cannot probe which emails exist).
        """
        admin = await self.find_one({"email": email.strip().lower()})
        if admin is not None:
            stored = admin.password_hash
        else:
            stored = await asyncio.to_thread(_dummy_password_hash, self.password_hasher)
        valid = await self._verify(stored, password)
        if admin is None or not valid or admin.status is not AdminStatus.ACTIVE:
            raise NotFoundError("invalid email or password", document_type=PlatformAdmin)
        changes: dict[str, Any] = {"last_login_at": utcnow()}
        if self.password_hasher.check_needs_rehash(admin.password_hash):
            changes["password_hash"] = await self._hash(password)
        # A sign-in is not an admin change: no audit entry, no version check needed.
        await self.collection().update_one({"_id": admin.id}, {"$set": changes})
        return await self.get(admin.id)

    async def set_roles(
        self, admin_id: Any, roles: Iterable[AdminRole], *, actor: str | None = None
    ) -> PlatformAdmin:
        """Replace an admin's roles (audited as `admin.roles_changed`)."""
        admin = await self.get(admin_id)
        new_roles = sorted({AdminRole(r) for r in roles})
        base_update = super(AuditedRepository, self).update
        async with owned_scope(self._layer):
            return await self._audited(
                lambda: base_update(admin, roles=new_roles),
                lambda a: self._record(
                    "roles_changed",
                    a,
                    before=[r.value for r in admin.roles],
                    after=[r.value for r in a.roles],
                ),
                actor=actor,
            )

    async def set_password(
        self, admin_id: Any, password: str, *, actor: str | None = None
    ) -> PlatformAdmin:
        """Set a new password (audited as `admin.password_changed`, without the hash)."""
        _check_password(password)
        admin = await self.get(admin_id)
        password_hash = await self._hash(password)
        base_update = super(AuditedRepository, self).update
        async with owned_scope(self._layer):
            return await self._audited(
                lambda: base_update(admin, password_hash=password_hash),
                lambda a: self._record("password_changed", a),
                actor=actor,
            )

    async def set_status(
        self, admin_id: Any, status: AdminStatus, *, actor: str | None = None
    ) -> PlatformAdmin:
        """Disable or re-enable an admin (audited)."""
        admin = await self.get(admin_id)
        status = AdminStatus(status)
        if admin.status is status:
            return admin
        base_update = super(AuditedRepository, self).update
        async with owned_scope(self._layer):
            return await self._audited(
                lambda: base_update(admin, status=status),
                lambda a: self._record(f"status_{status.value}", a),
                actor=actor,
            )
