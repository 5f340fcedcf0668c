"""Platform collections (`{prefix}_platform`): CAAS's own operations, not tenant data."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from beanie import PydanticObjectId
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymongo import ASCENDING, DESCENDING, IndexModel

from caas_data.documents.base import (
    Area,
    BaseDocument,
    PlatformDocument,
    TenantAccess,
    TenantOwnedDocument,
)
from caas_data.engine.clusters import HOME_CLUSTER
from caas_data.tenancy.tiers import Tier

__all__ = [
    "API_KEY_SCOPE_PATTERN",
    "DOCUMENTS",
    "RETIRED_CLIENT_STATUSES",
    "AdminRole",
    "AdminStatus",
    "ApiKey",
    "Application",
    "ApplicationStatus",
    "ClientStatus",
    "MigrationRecord",
    "MigrationStatus",
    "PlacementRecord",
    "PlatformAdmin",
    "SaasClient",
]


class ClientStatus(StrEnum):
    """Whether a tenant may use the platform.

    The last two are set only by `layer.tenants.deprovision`: the resolver never routes such a
    tenant, and the entry stays as a tombstone so the id is not silently reused.
    """

    ACTIVE = "active"
    SUSPENDED = "suspended"
    DEPROVISIONING = "deprovisioning"
    DEPROVISIONED = "deprovisioned"


RETIRED_CLIENT_STATUSES: frozenset[ClientStatus] = frozenset(
    {ClientStatus.DEPROVISIONING, ClientStatus.DEPROVISIONED}
)
"""Statuses of a directory entry that no longer stands for a live tenant."""


class PlacementRecord(BaseModel):
    """Where a tenant's data lives, as recorded in the directory."""

    model_config = ConfigDict(frozen=True)

    database: str
    collection_prefix: str = ""
    cluster: str = HOME_CLUSTER  # entries written before clusters existed lack it


class SaasClient(PlatformDocument):
    """A registered SaaS company: the tenant directory the resolver reads.

    A tenant scope reads its own entry only and writes none: the resolver routes by it.
    """

    caas_tenant_access: ClassVar[TenantAccess] = TenantAccess.OWN_ROW

    tenant_id: str = Field(description="The tenant id every tenant row carries.")
    name: str = Field(min_length=1, max_length=200)
    tier: Tier
    status: ClientStatus = ClientStatus.ACTIVE
    placement: PlacementRecord
    pending_tier: Tier | None = Field(
        default=None, description="A tier change recorded but not yet carried out."
    )

    class Settings:
        name = "saas_clients"
        indexes = [IndexModel([("tenant_id", ASCENDING)], unique=True, name="tenant_id_unique")]

    @property
    def is_retired(self) -> bool:
        """True for the tombstone of a deprovisioned (or deprovisioning) tenant."""
        return self.status in RETIRED_CLIENT_STATUSES


class ApplicationStatus(StrEnum):
    """Whether an application may be used."""

    ACTIVE = "active"
    DISABLED = "disabled"


class Application(TenantOwnedDocument):
    """A client's application; it belongs to exactly one client (its `tenant_id`, immutable)."""

    caas_area: ClassVar[Area] = Area.PLATFORM

    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    status: ApplicationStatus = ApplicationStatus.ACTIVE
    allowed_origins: list[str] = Field(default_factory=list, max_length=50)

    class Settings:
        name = "applications"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("name", ASCENDING)],
                unique=True,
                name="tenant_name_unique",
            ),
        ]


API_KEY_SCOPE_PATTERN = r"^[a-z][a-z0-9_-]{0,31}(:[a-z0-9_*-]{1,32}){0,3}$"


class ApiKey(TenantOwnedDocument):
    """An API key of a client. The secret itself is never stored: only its hash and prefix.

    `prefix` is a short random lookup id (part of the raw key, not secret on its own); the
    authentication reads the key by prefix, then compares hashes in constant time.
    """

    caas_area: ClassVar[Area] = Area.PLATFORM
    # Only `ApiKeyRepository.issue/revoke/rotate` write these: a raw update could otherwise
    # re-enable a revoked key, extend its life or widen its scopes.
    caas_protected_fields: ClassVar[frozenset[str]] = frozenset(
        {"prefix", "key_hash", "scopes", "expires_at", "revoked_at", "rotated_from", "replaced_by"}
    )

    name: str = Field(min_length=1, max_length=100)
    application_id: PydanticObjectId | None = None
    prefix: str = Field(pattern=r"^[a-z0-9]{12}$")
    key_hash: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 hex of the raw key.", repr=False
    )
    scopes: list[str] = Field(default_factory=list, max_length=50)
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    rotated_from: PydanticObjectId | None = None
    replaced_by: PydanticObjectId | None = None

    class Settings:
        name = "api_keys"
        indexes = [
            # Global: a request names its key before anyone knows its tenant.
            IndexModel([("prefix", ASCENDING)], unique=True, name="prefix_unique"),
            IndexModel(
                [("tenant_id", ASCENDING), ("application_id", ASCENDING)],
                name="tenant_application",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("created_at", DESCENDING)], name="tenant_created"
            ),
        ]

    @field_validator("scopes")
    @classmethod
    def _valid_scopes(cls, value: list[str]) -> list[str]:
        for scope in value:
            if not re.fullmatch(API_KEY_SCOPE_PATTERN, scope):
                raise ValueError(
                    f"invalid scope {scope!r}: expected e.g. 'messages', 'messages:write'"
                )
        return sorted(set(value))

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        return value


class AdminRole(StrEnum):
    """What a platform admin may do."""

    SUPER_ADMIN = "super_admin"
    ADMIN = "admin"
    SUPPORT = "support"
    BILLING = "billing"
    READ_ONLY = "read_only"


class AdminStatus(StrEnum):
    """Whether an admin may sign in."""

    ACTIVE = "active"
    DISABLED = "disabled"


_PASSWORD_HASH_PREFIXES = ("$argon2id$", "$argon2i$", "$argon2d$", "$2b$", "$2a$", "$scrypt$")


class PlatformAdmin(PlatformDocument):
    """A CAAS staff member. Only a password hash (argon2) is stored, never the password."""

    email: str = Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    display_name: str = Field(min_length=1, max_length=100)
    roles: list[AdminRole] = Field(min_length=1)
    password_hash: str = Field(min_length=20, max_length=512, repr=False)
    status: AdminStatus = AdminStatus.ACTIVE
    last_login_at: datetime | None = None

    class Settings:
        name = "platform_admins"
        indexes = [IndexModel([("email", ASCENDING)], unique=True, name="email_unique")]

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, value: list[AdminRole]) -> list[AdminRole]:
        return sorted(set(value))

    @field_validator("password_hash")
    @classmethod
    def _is_a_hash(cls, value: str) -> str:
        # A guard against storing a plain password by mistake.
        if not value.startswith(_PASSWORD_HASH_PREFIXES):
            raise ValueError("password_hash must be an argon2, bcrypt or scrypt hash")
        return value


class MigrationStatus(StrEnum):
    """Where one schema step stands at one tenant's placement."""

    RUNNING = "running"  # started; a crash leaves it here, and a re-run finishes it
    DONE = "done"
    FAILED = "failed"


class MigrationRecord(TenantOwnedDocument):
    """The ledger of `caas-data migrate`: one schema step at one tenant's placement.

    Informative, not authoritative: a run always counts the documents still below the step's
    version, so a record cannot make it skip work. Written by the operator's code only.
    """

    tenant_id: str
    placement: str = Field(description="`database/collection_prefix` the step ran at.")
    document: str = Field(description="The logical collection name.")
    step: str
    version: int = Field(ge=2)
    status: MigrationStatus = MigrationStatus.RUNNING
    migrated: int = Field(default=0, ge=0)
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = Field(default=None, max_length=2000)

    class Settings:
        name = "schema_migrations"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("document", ASCENDING), ("version", ASCENDING)],
                unique=True,
                name="tenant_document_version_unique",
            )
        ]


DOCUMENTS: tuple[type[BaseDocument], ...] = (
    SaasClient,
    Application,
    ApiKey,
    PlatformAdmin,
    MigrationRecord,
)
