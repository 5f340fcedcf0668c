"""Users domain (seed: saas/users): end users, their devices, sessions and relationships."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from beanie import PydanticObjectId
from pydantic import Field, field_validator
from pymongo import ASCENDING, DESCENDING, IndexModel

from caas_data.documents.base import SoftDeleteMixin, TenantDocument
from caas_data.tenancy.field_encryption import FieldEncryption

__all__ = [
    "DELETED_USER_ID",
    "DOCUMENTS",
    "DevicePlatform",
    "Presence",
    "PushProvider",
    "RelationshipKind",
    "User",
    "UserDevice",
    "UserRelationship",
    "UserSession",
    "UserStatus",
]

DELETED_USER_ID = PydanticObjectId("000000000000000000000000")
"""Who an erased user's messages and records name instead (GDPR erasure): "deleted user"."""


class UserStatus(StrEnum):
    """Account state of an end user."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    DEACTIVATED = "deactivated"


class Presence(StrEnum):
    """Last known presence, for contact lists."""

    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class User(SoftDeleteMixin, TenantDocument):
    """An end user of a tenant's app, known by the tenant's own user id (`external_id`)."""

    # Encrypted under the tenant's key on a layer with EncryptionOptions(personal_fields=True);
    # deterministic, so a lookup by email still works.
    caas_personal_fields: ClassVar[dict[str, FieldEncryption | str]] = {
        "email": FieldEncryption.DETERMINISTIC
    }

    external_id: str = Field(min_length=1, max_length=128)
    display_name: str = Field(min_length=1, max_length=100)
    username: str | None = Field(default=None, min_length=1, max_length=64)
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    avatar_url: str | None = Field(default=None, max_length=2048)
    status: UserStatus = UserStatus.ACTIVE
    presence: Presence = Presence.OFFLINE
    last_seen_at: datetime | None = None
    locale: str | None = Field(default=None, max_length=35)
    metadata: dict[str, Any] = Field(default_factory=dict)

    class Settings:
        name = "users"
        indexes = [
            # Unique per tenant, soft-deleted users included: restoring must stay possible.
            IndexModel(
                [("tenant_id", ASCENDING), ("external_id", ASCENDING)],
                unique=True,
                name="tenant_external_id_unique",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("username", ASCENDING)],
                unique=True,
                partialFilterExpression={"username": {"$type": "string"}},
                name="tenant_username_unique",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("created_at", DESCENDING)], name="tenant_created"
            ),
        ]


class DevicePlatform(StrEnum):
    """Where a device runs."""

    IOS = "ios"
    ANDROID = "android"
    WEB = "web"
    DESKTOP = "desktop"


class PushProvider(StrEnum):
    """Who delivers push notifications to the device."""

    APNS = "apns"
    FCM = "fcm"
    WEB_PUSH = "webpush"


class UserDevice(TenantDocument):
    """A device a user signed in on, with its push token."""

    # As User.email: a device is found by its token when the push service rejects it.
    caas_personal_fields: ClassVar[dict[str, FieldEncryption | str]] = {
        "push_token": FieldEncryption.DETERMINISTIC
    }

    user_id: PydanticObjectId
    device_id: str = Field(min_length=1, max_length=128, description="Chosen by the client.")
    platform: DevicePlatform
    push_provider: PushProvider | None = None
    push_token: str | None = Field(default=None, max_length=4096, repr=False)
    app_version: str | None = Field(default=None, max_length=64)
    last_active_at: datetime | None = None

    class Settings:
        name = "user_devices"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("device_id", ASCENDING)],
                unique=True,
                name="tenant_user_device_unique",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("push_token", ASCENDING)],
                partialFilterExpression={"push_token": {"$type": "string"}},
                name="tenant_push_token",
            ),
        ]


class UserSession(TenantDocument):
    """A signed-in session; expires by TTL at `expires_at`. Only a hash of the token is kept."""

    user_id: PydanticObjectId
    device_id: str | None = Field(default=None, max_length=128)
    token_hash: str = Field(
        min_length=32, max_length=128, description="e.g. SHA-256 hex.", repr=False
    )
    ip_address: str | None = Field(default=None, max_length=45)
    user_agent: str | None = Field(default=None, max_length=512)
    expires_at: datetime
    revoked_at: datetime | None = None

    class Settings:
        name = "user_sessions"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("token_hash", ASCENDING)],
                unique=True,
                name="tenant_token_hash_unique",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("expires_at", DESCENDING)],
                name="tenant_user_sessions",
            ),
            IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="ttl_expires_at"),
        ]

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        return value


class RelationshipKind(StrEnum):
    """How one user relates to another (directed: `user_id` -> `other_user_id`)."""

    CONTACT = "contact"
    BLOCKED = "blocked"
    MUTED = "muted"


class UserRelationship(TenantDocument):
    """A directed edge between two users of the same tenant."""

    user_id: PydanticObjectId
    other_user_id: PydanticObjectId
    kind: RelationshipKind
    nickname: str | None = Field(default=None, max_length=100)

    class Settings:
        name = "user_relationships"
        indexes = [
            IndexModel(
                [
                    ("tenant_id", ASCENDING),
                    ("user_id", ASCENDING),
                    ("kind", ASCENDING),
                    ("other_user_id", ASCENDING),
                ],
                unique=True,
                name="tenant_user_kind_other_unique",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("other_user_id", ASCENDING), ("kind", ASCENDING)],
                name="tenant_other_kind",
            ),
        ]

    @field_validator("other_user_id")
    @classmethod
    def _not_self(cls, value: PydanticObjectId, info: Any) -> PydanticObjectId:
        if info.data.get("user_id") == value:
            raise ValueError("a user cannot relate to themself")
        return value


DOCUMENTS: tuple[type[TenantDocument], ...] = (User, UserDevice, UserSession, UserRelationship)
