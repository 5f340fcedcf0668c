"""API keys: issued once, stored as a hash, looked up by prefix, compared in constant time.

A raw key reads `caas_<prefix>_<secret>`: the 12-character prefix finds the stored key (one
indexed read, before the tenant is known), the SHA-256 of the whole key is compared with
`hmac.compare_digest`. The secret has 256 bits of entropy, so a fast hash is enough (a slow
password hash would only slow every request). Usage is recorded at most once per
`LAST_USED_GRANULARITY`, by a conditional update that only the first concurrent request wins.

In a FastAPI app::

    async def principal(authorization: str = Header()) -> ApiKeyPrincipal:
        raw_key = authorization.removeprefix("Bearer ")
        try:
            return await layer.repo(ApiKeyRepository).authenticate(raw_key)
        except NotFoundError as exc:
            raise HTTPException(401, "invalid API key") from exc
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from beanie import PydanticObjectId

from caas_data.documents.base import utcnow
from caas_data.documents.platform import ApiKey, Application
from caas_data.errors import DocumentValidationError, NotFoundError, VersionConflict
from caas_data.repositories.audited import AuditedRepository
from caas_data.repositories.base import check_duration
from caas_data.repositories.owned import owned_scope, scope_tenant

__all__ = [
    "API_KEY_PREFIX",
    "ApiKeyPrincipal",
    "ApiKeyRepository",
    "IssuedApiKey",
    "hash_api_key",
]

API_KEY_PREFIX = "caas"
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_PREFIX_LENGTH = 12
_DUMMY_HASH = "0" * 64  # compared against when the prefix is unknown, to keep timing flat
DEFAULT_ROTATION_GRACE = timedelta(hours=24)


def hash_api_key(raw_key: str) -> str:
    """SHA-256 hex of a raw key: the only form in which a key is stored."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _split(raw_key: str) -> str | None:
    """The lookup prefix of a well-formed raw key, else None."""
    if not isinstance(raw_key, str):
        return None
    parts = raw_key.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or len(parts[1]) != _PREFIX_LENGTH:
        return None
    return parts[1] if len(parts[2]) >= 32 else None


@dataclass(frozen=True, slots=True)
class IssuedApiKey:
    """A new key: `secret` is the raw key, shown this once and stored nowhere."""

    key: ApiKey
    secret: str

    def __repr__(self) -> str:
        return f"IssuedApiKey(key={self.key.id}, prefix={self.key.prefix!r}, secret=<hidden>)"


@dataclass(frozen=True, slots=True)
class ApiKeyPrincipal:
    """Who a request authenticated as: the tenant and what its key may do."""

    tenant_id: str
    key_id: PydanticObjectId
    scopes: frozenset[str]
    application_id: PydanticObjectId | None
    expires_at: datetime | None

    def allows(self, scope: str) -> bool:
        """True if a granted scope covers `scope` (`messages` covers `messages:write`)."""
        for granted in self.scopes:
            if scope == granted or scope.startswith(granted + ":"):
                return True
            if granted.endswith(":*") and scope.startswith(granted[:-1]):
                return True
        return False


class ApiKeyRepository(AuditedRepository[ApiKey]):
    """Issue, authenticate, revoke and rotate API keys; every change is audited."""

    document_type = ApiKey
    audit_target = "api_key"

    LAST_USED_GRANULARITY = timedelta(seconds=60)

    def _new(self, tenant_id: str, **fields: Any) -> IssuedApiKey:
        prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(_PREFIX_LENGTH))
        secret = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
        key = self._validate(
            {"tenant_id": tenant_id, "prefix": prefix, "key_hash": hash_api_key(secret), **fields}
        )
        return IssuedApiKey(key, secret)

    async def issue(
        self,
        name: str,
        *,
        scopes: Iterable[str] = (),
        application_id: Any = None,
        expires_in: timedelta | None = None,
        tenant_id: str | None = None,
        actor: str | None = None,
    ) -> IssuedApiKey:
        """Create a key for the scope's tenant (or `tenant_id` in a system scope).

        Raises:
            NotFoundError: `application_id` is not an application of this tenant.
            DocumentValidationError: a scope or the lifetime is invalid.
        """
        if expires_in is not None:
            check_duration("expires_in", expires_in)
        tenant = scope_tenant(tenant_id)
        async with owned_scope(self._layer, tenant):
            app_id = None
            if application_id is not None:
                app_id = self._id(application_id)
                if not await self._layer.collection(Application).find_one({"_id": app_id}):
                    raise NotFoundError(
                        f"application {app_id} is not an application of tenant {tenant!r}",
                        tenant_id=tenant,
                        document_type=Application,
                    )
            issued = self._new(
                tenant,
                name=name,
                scopes=list(scopes),
                application_id=app_id,
                expires_at=None if expires_in is None else utcnow() + expires_in,
            )
            # Keys are protected documents: only issue() and rotate() insert them.
            await self._audited(
                lambda: self._create(issued.key, privileged=True),
                lambda key: self._record("created", key, scopes=list(key.scopes)),
                actor=actor,
            )
        return issued

    async def authenticate(self, raw_key: str, *, now: datetime | None = None) -> ApiKeyPrincipal:
        """The tenant and scopes of a raw key.

        Runs outside any scope (a system scope is entered for the lookup); in a tenant scope
        only that tenant's keys are found.

        Raises:
            NotFoundError: the key is unknown or malformed, revoked, or expired, or its tenant
                is not (or no longer) provisioned.
        """
        moment = now or utcnow()
        prefix = _split(raw_key)
        async with owned_scope(self._layer):
            collection = self.collection()
            raw = None if prefix is None else await collection.find_one({"prefix": prefix})
            stored = raw["key_hash"] if raw is not None else _DUMMY_HASH
            given = hash_api_key(raw_key) if isinstance(raw_key, str) else ""
            if not hmac.compare_digest(stored, given) or raw is None:
                raise NotFoundError("unknown API key", document_type=ApiKey)
            key = self._load(raw)
            if key.revoked_at is not None:
                raise NotFoundError(
                    f"API key {key.prefix} was revoked at {key.revoked_at.isoformat()}",
                    tenant_id=key.tenant_id,
                    document_type=ApiKey,
                )
            if key.expires_at is not None and key.expires_at <= moment:
                raise NotFoundError(
                    f"API key {key.prefix} expired at {key.expires_at.isoformat()}",
                    tenant_id=key.tenant_id,
                    document_type=ApiKey,
                )
            # Deprovisioning deletes a tenant's keys first; this holds even for a key that an
            # interrupted run left behind, or one issued later under the retired id.
            if await self._layer.resolver.resolve_or_none(key.tenant_id) is None:
                raise NotFoundError(
                    f"API key {key.prefix} belongs to a tenant that is not provisioned",
                    tenant_id=key.tenant_id,
                    document_type=ApiKey,
                )
            await self._touch(key, moment)
        return ApiKeyPrincipal(
            tenant_id=key.tenant_id,
            key_id=key.id,  # type: ignore[arg-type]
            scopes=frozenset(key.scopes),
            application_id=key.application_id,
            expires_at=key.expires_at,
        )

    async def _touch(self, key: ApiKey, moment: datetime) -> bool:
        """Record use, at most once per granularity; True if this call wrote."""
        stale = moment - self.LAST_USED_GRANULARITY
        if key.last_used_at is not None and key.last_used_at > stale:
            return False
        result = await self.collection().update_one(
            {
                "_id": key.id,
                "$or": [{"last_used_at": None}, {"last_used_at": {"$lte": stale}}],
            },
            {"$set": {"last_used_at": moment}},
        )
        return bool(result.modified_count)

    async def revoke(self, key_id: Any, *, actor: str | None = None) -> ApiKey:
        """Revoke a key now. Idempotent: a revoked key is returned as it is (not re-audited)."""
        document_id = self._id(key_id)
        current = await self.get(document_id)
        if current.revoked_at is not None:
            return current

        async def write() -> ApiKey:
            result = (
                await self.collection()
                ._privileged()
                .update_one(
                    {"_id": document_id, "revoked_at": None}, {"$set": {"revoked_at": utcnow()}}
                )
            )
            if result.matched_count != 1:
                raise VersionConflict(f"API key {document_id} was revoked concurrently")
            return await self.get(document_id)

        async with owned_scope(self._layer, current.tenant_id):
            return await self._audited(write, lambda k: self._record("revoked", k), actor=actor)

    async def rotate(
        self,
        key_id: Any,
        *,
        grace: timedelta = DEFAULT_ROTATION_GRACE,
        actor: str | None = None,
    ) -> IssuedApiKey:
        """Issue a replacement with the same name, scopes and application.

        The old key keeps working for `grace` (or until its own expiry, if sooner), so
        clients can switch without downtime.

        Raises:
            DocumentValidationError: the key is revoked, expired or already rotated.
        """
        if grace < timedelta(0):
            raise DocumentValidationError("grace must not be negative", fields=("grace",))
        document_id = self._id(key_id)
        old = await self.get(document_id)
        self._require_rotatable(old)

        async def write() -> IssuedApiKey:
            moment = utcnow()
            issued = self._new(
                old.tenant_id,
                name=old.name,
                scopes=old.scopes,
                application_id=old.application_id,
                expires_at=old.expires_at,
                rotated_from=old.id,
            )
            await self._create(issued.key, privileged=True)
            grace_end = moment + grace
            expiry = grace_end if old.expires_at is None else min(old.expires_at, grace_end)
            result = (
                await self.collection()
                ._privileged()
                .update_one(
                    {"_id": document_id, "replaced_by": None, "revoked_at": None},
                    {"$set": {"replaced_by": issued.key.id, "expires_at": expiry}},
                )
            )
            if result.matched_count != 1:
                raise VersionConflict(f"API key {document_id} was rotated or revoked concurrently")
            return issued

        async with owned_scope(self._layer, old.tenant_id):
            return await self._audited(
                write,
                lambda issued: [
                    self._record("rotated", old, replaced_by=str(issued.key.id)),
                    self._record("created", issued.key, rotated_from=str(old.id)),
                ],
                actor=actor,
            )

    @staticmethod
    def _require_rotatable(key: ApiKey) -> None:
        problem = None
        if key.revoked_at is not None:
            problem = "is revoked"
        elif key.replaced_by is not None:
            problem = f"was already rotated (replacement {key.replaced_by})"
        elif key.expires_at is not None and key.expires_at <= utcnow():
            problem = "has expired"
        if problem is not None:
            raise DocumentValidationError(
                f"API key {key.prefix} {problem}: it cannot be rotated",
                document_type=ApiKey,
                tenant_id=key.tenant_id,
            )
