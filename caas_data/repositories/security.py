"""Security repositories: IP allow/block lists, `is_allowed`, and typed security policies.

Every change to these documents is audited in the tenant's chain (platform defaults in the
platform's chain).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from caas_data.documents.analytics import PLATFORM_AUDIT_TENANT
from caas_data.documents.base import utcnow
from caas_data.documents.security import (
    BlockedIp,
    IpPolicy,
    IpWhitelistEntry,
    PasswordPolicy,
    PolicyKind,
    PolicySettings,
    RateLimitPolicy,
    SecurityPolicy,
    SessionPolicy,
    address_key,
    parse_address,
    parse_network,
)
from caas_data.errors import DocumentValidationError, NotFoundError
from caas_data.repositories.audited import AuditedRepository
from caas_data.repositories.base import Repository, check_duration
from caas_data.repositories.owned import owned_scope, scope_tenant
from caas_data.tenancy.ids import validate_tenant_id

if TYPE_CHECKING:
    from caas_data.documents.security import IpAddress
    from caas_data.layer import DataLayer

__all__ = [
    "BlockedIpRepository",
    "IpAccessControl",
    "IpDecision",
    "IpWhitelistRepository",
    "SecurityPolicyRepository",
]

R = TypeVar("R", IpWhitelistEntry, BlockedIp)

_BUILT_IN_DEFAULTS: dict[PolicyKind, PolicySettings] = {
    PolicyKind.PASSWORD: PasswordPolicy(),
    PolicyKind.SESSION: SessionPolicy(),
    PolicyKind.IP: IpPolicy(),
    PolicyKind.RATE_LIMIT: RateLimitPolicy(),
}


def _address(ip: str) -> IpAddress:
    try:
        return parse_address(ip)
    except ValueError as exc:
        raise DocumentValidationError(str(exc), fields=("ip",)) from exc


def _cidr(value: str) -> str:
    try:
        return str(parse_network(value))
    except ValueError as exc:
        raise DocumentValidationError(str(exc), fields=("cidr",)) from exc


class _IpRuleRepository(AuditedRepository[R]):
    """What both IP lists share: add, remove, and an indexed "which entries contain it"."""

    def _live(self, now: datetime) -> dict[str, Any]:
        """Extra filter for entries still in force."""
        return {}

    async def list_matching(self, ip: str, *, now: datetime | None = None) -> list[R]:
        """The scope's entries whose range contains `ip`."""
        address = _address(ip)
        key = address_key(address)
        query = {
            "ip_version": address.version,
            "range_start": {"$lte": key},
            "range_end": {"$gte": key},
            **self._live(now or utcnow()),
        }
        return (await self.find(query, limit=100)).items

    async def get_by_cidr(self, cidr: str) -> R:
        """The entry for this address or range; `NotFoundError` if none."""
        normalised = _cidr(cidr)
        found = await self.find_one({"cidr": normalised})
        if found is None:
            raise NotFoundError(f"no entry for {normalised}", document_type=self.document_type)
        return found

    async def delete_by_cidr(self, cidr: str, *, actor: str | None = None) -> None:
        """Delete the entry for this address or range (audited)."""
        await self.purge(await self.get_by_cidr(cidr), actor=actor)


class IpWhitelistRepository(_IpRuleRepository[IpWhitelistEntry]):
    """The tenant's allowed addresses and ranges."""

    document_type = IpWhitelistEntry
    audit_target = "ip_whitelist"

    async def allow(
        self, cidr: str, *, description: str | None = None, actor: str | None = None
    ) -> IpWhitelistEntry:
        """Add an address or CIDR range to the allow list."""
        entry = self._validate({"cidr": cidr, "description": description, "created_by": actor})
        base_create = super(AuditedRepository, self).create
        return await self._audited(
            lambda: base_create(entry),
            lambda e: self._record("created", e, cidr=e.cidr),
            actor=actor,
        )


class BlockedIpRepository(_IpRuleRepository[BlockedIp]):
    """The tenant's blocked addresses and ranges; timed blocks expire (TTL, and on read)."""

    document_type = BlockedIp
    audit_target = "blocked_ip"

    def _live(self, now: datetime) -> dict[str, Any]:
        # The TTL monitor runs about once a minute: expired blocks must not count meanwhile.
        return {"$or": [{"expires_at": None}, {"expires_at": {"$gt": now}}]}

    async def block(
        self,
        cidr: str,
        *,
        reason: str | None = None,
        duration: timedelta | None = None,
        actor: str | None = None,
    ) -> BlockedIp:
        """Block an address or range (for `duration`, or until unblocked).

        Blocking an already blocked network replaces its reason and expiry.
        """
        if duration is not None:
            check_duration("duration", duration)
        expires_at = None if duration is None else utcnow() + duration
        normalised = _cidr(cidr)
        fields = {"reason": reason, "expires_at": expires_at}

        async def write() -> BlockedIp:
            existing = await self.find_one({"cidr": normalised})
            if existing is None:
                return await Repository.create(
                    self, {"cidr": normalised, "created_by": actor, **fields}
                )
            return await Repository.update(self, existing, **fields)

        return await self._audited(
            write,
            lambda b: self._record(
                "blocked",
                b,
                cidr=b.cidr,
                reason=reason,
                expires_at=None if expires_at is None else expires_at.isoformat(),
            ),
            actor=actor,
        )


@dataclass(frozen=True, slots=True)
class IpDecision:
    """Whether an address may connect, and why (the matching rule, if any)."""

    allowed: bool
    reason: str
    rule: str | None = None


class IpAccessControl:
    """Answers `is_allowed(tenant_id, ip)` from the tenant's block and allow lists.

    Blocks win. Then, if the tenant's IP policy enforces the allow list and the list has
    entries, only addresses in it are allowed; an empty allow list allows everyone.
    """

    def __init__(self, layer: DataLayer) -> None:
        self._layer = layer

    async def check(self, tenant_id: str, ip: str, *, now: datetime | None = None) -> IpDecision:
        """The decision for `ip`, with its reason."""
        validate_tenant_id(tenant_id)
        _address(ip)  # a malformed address is the caller's error, before any I/O
        async with owned_scope(self._layer, tenant_id):
            blocks = await self._layer.repo(BlockedIpRepository).list_matching(ip, now=now)
            if blocks:
                return IpDecision(False, "blocked", blocks[0].cidr)
            policy = await self._layer.repo(SecurityPolicyRepository).get_effective(PolicyKind.IP)
            assert isinstance(policy, IpPolicy)
            if not policy.enforce_whitelist:
                return IpDecision(True, "allow list not enforced")
            allow_list = self._layer.repo(IpWhitelistRepository)
            allowed = await allow_list.list_matching(ip)
            if allowed:
                return IpDecision(True, "allow-listed", allowed[0].cidr)
            if await allow_list.exists():
                return IpDecision(False, "not in the allow list")
            return IpDecision(True, "no allow list")

    async def is_allowed(self, tenant_id: str, ip: str, *, now: datetime | None = None) -> bool:
        """True if `ip` may connect to `tenant_id`."""
        return (await self.check(tenant_id, ip, now=now)).allowed


class SecurityPolicyRepository(AuditedRepository[SecurityPolicy]):
    """Typed policies per tenant, falling back to platform defaults, then built-in ones."""

    document_type = SecurityPolicy
    audit_target = "security_policy"

    async def set(
        self, settings: PolicySettings, *, tenant_id: str | None = None, actor: str | None = None
    ) -> SecurityPolicy:
        """Set the tenant's policy of `settings.kind` (replacing any earlier one)."""
        return await self._put(scope_tenant(tenant_id), settings, actor)

    async def set_platform_default(
        self, settings: PolicySettings, *, actor: str | None = None
    ) -> SecurityPolicy:
        """Set the default every tenant without its own policy of this kind gets."""
        return await self._put(PLATFORM_AUDIT_TENANT, settings, actor)

    async def _put(
        self, tenant: str, settings: PolicySettings, actor: str | None
    ) -> SecurityPolicy:
        if not isinstance(settings, PasswordPolicy | SessionPolicy | IpPolicy | RateLimitPolicy):
            raise DocumentValidationError(
                "settings must be a PasswordPolicy, SessionPolicy, IpPolicy or RateLimitPolicy",
                fields=("settings",),
            )
        kind = settings.kind

        async def write() -> SecurityPolicy:
            existing = await self.find_one({"tenant_id": tenant, "kind": kind.value})
            if existing is None:
                return await Repository.create(
                    self,
                    {"tenant_id": tenant, "kind": kind, "settings": settings, "updated_by": actor},
                )
            return await Repository.update(self, existing, settings=settings, updated_by=actor)

        async with owned_scope(self._layer, tenant):
            return await self._audited(
                write,
                lambda p: self._record(
                    "updated", p, kind=kind.value, settings=settings.model_dump(mode="json")
                ),
                actor=actor,
            )

    async def reset(
        self, kind: PolicyKind, *, tenant_id: str | None = None, actor: str | None = None
    ) -> bool:
        """Drop the tenant's own policy of `kind` (the default applies again); False if none."""
        tenant = scope_tenant(tenant_id)
        async with owned_scope(self._layer, tenant):
            existing = await self.find_one({"kind": PolicyKind(kind).value})
            if existing is None:
                return False
            await self.purge(existing, actor=actor)
            return True

    async def get_effective(
        self, kind: PolicyKind, *, tenant_id: str | None = None
    ) -> PolicySettings:
        """The tenant's policy of `kind`, else the platform default, else the built-in one."""
        kind = PolicyKind(kind)
        tenant = scope_tenant(tenant_id)
        async with owned_scope(self._layer, tenant):
            own = await self.find_one({"kind": kind.value})
        if own is not None:
            return own.settings
        # Platform defaults are rows of the platform's reserved id, which a tenant scope
        # cannot read through the guard: read them from the platform collection directly.
        raw = await self._layer.unguarded_platform_collection(
            SecurityPolicy, why="platform defaults belong to no tenant the scope can read"
        ).find_one({"tenant_id": PLATFORM_AUDIT_TENANT, "kind": kind.value})
        if raw is not None:
            return self._load(raw).settings
        return _BUILT_IN_DEFAULTS[kind]
