"""Users domain repositories: lookups by the tenant's own ids, devices, sessions, contacts."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from beanie import PydanticObjectId

from caas_data.documents.base import utcnow
from caas_data.documents.saas.users import (
    DevicePlatform,
    Presence,
    PushProvider,
    RelationshipKind,
    User,
    UserDevice,
    UserRelationship,
    UserSession,
)
from caas_data.driver_errors import translate_driver_errors
from caas_data.errors import DocumentValidationError, NotFoundError
from caas_data.repositories.base import Repository, check_duration

__all__ = [
    "UserDeviceRepository",
    "UserRelationshipRepository",
    "UserRepository",
    "UserSessionRepository",
    "hash_session_token",
]


def hash_session_token(token: str) -> str:
    """SHA-256 hex of a session token: only this is stored, never the token itself."""
    if len(token) < 16:
        raise DocumentValidationError("session tokens must be at least 16 characters")
    return hashlib.sha256(token.encode()).hexdigest()


class UserRepository(Repository[User]):
    """End users of the scope's tenant."""

    document_type = User

    async def get_by_external_id(self, external_id: str, *, include_deleted: bool = False) -> User:
        """The user the tenant knows as `external_id`; `NotFoundError` if none."""
        user = await self.find_one({"external_id": external_id}, include_deleted=include_deleted)
        if user is None:
            raise NotFoundError(
                f"no user with external_id {external_id!r}",
                tenant_id=self.collection().rules.tenant_id,
                document_type=User,
            )
        return user

    async def get_many_by_external_ids(self, external_ids: Sequence[str]) -> list[User]:
        """Users for a list of external ids (missing ones are left out)."""
        page = await self.find(
            {"external_id": {"$in": list(external_ids)}}, limit=max(1, len(external_ids))
        )
        return page.items

    async def set_presence(self, user_id: Any, presence: Presence) -> None:
        """Record presence without a version check: it is a last-writer-wins signal."""
        changed = await self.update_many(
            {"_id": self._id(user_id)}, {"presence": presence, "last_seen_at": utcnow()}
        )
        if changed == 0 and not await self.exists({"_id": self._id(user_id)}):
            raise NotFoundError(f"user {user_id} not found", document_type=User)


class UserDeviceRepository(Repository[UserDevice]):
    """Devices and their push tokens."""

    document_type = UserDevice

    async def register(
        self,
        user_id: PydanticObjectId,
        device_id: str,
        *,
        platform: DevicePlatform,
        push_provider: PushProvider | None = None,
        push_token: str | None = None,
        app_version: str | None = None,
    ) -> UserDevice:
        """Create or refresh the (user, device) entry in one atomic upsert."""
        with translate_driver_errors(document_type=UserDevice):  # never a raw pydantic error
            probe = UserDevice(  # validates every argument before any write
                user_id=user_id,
                device_id=device_id,
                platform=platform,
                push_provider=push_provider,
                push_token=push_token,
                app_version=app_version,
                last_active_at=utcnow(),
            )
        fields = ("platform", "push_provider", "push_token", "app_version", "last_active_at")
        return await self.upsert(
            {"user_id": probe.user_id, "device_id": probe.device_id},
            {name: getattr(probe, name) for name in fields},
        )

    async def list_by_user(self, user_id: PydanticObjectId) -> list[UserDevice]:
        """All devices of a user, most recently active first."""
        page = await self.find({"user_id": user_id}, sort="-last_active_at", limit=100)
        return page.items

    async def list_push_targets(self, user_ids: Sequence[PydanticObjectId]) -> list[UserDevice]:
        """Devices with a push token, for a fan-out of notifications."""
        page = await self.find(
            # `$ne: None`, not `$type: "string"`: an encrypted token is stored as binary.
            {"user_id": {"$in": list(user_ids)}, "push_token": {"$ne": None}},
            limit=1000,
        )
        return page.items


class UserSessionRepository(Repository[UserSession]):
    """Sessions: created with a lifetime, found by token, revoked; expired ones vanish (TTL)."""

    document_type = UserSession

    async def issue(
        self,
        user_id: PydanticObjectId,
        token: str,
        *,
        lifetime: timedelta,
        device_id: str | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
    ) -> UserSession:
        """Open a session; only the token's hash is stored."""
        check_duration("lifetime", lifetime)
        return await self.create(
            {
                "user_id": user_id,
                "token_hash": hash_session_token(token),
                "expires_at": utcnow() + lifetime,
                "device_id": device_id,
                "ip_address": ip_address,
                "user_agent": user_agent,
            }
        )

    async def authenticate(self, token: str, *, now: datetime | None = None) -> UserSession:
        """The live session of a token; `NotFoundError` if unknown, revoked or expired.

        The TTL monitor removes expired sessions only periodically, so expiry is checked here.
        """
        session = await self.find_one({"token_hash": hash_session_token(token)})
        moment = now or utcnow()
        if session is None or session.revoked_at is not None or session.expires_at <= moment:
            raise NotFoundError("no live session for this token", document_type=UserSession)
        return session

    async def revoke(self, session_id: Any) -> None:
        """Revoke one session."""
        changed = await self.update_many({"_id": self._id(session_id)}, {"revoked_at": utcnow()})
        if changed == 0:
            raise NotFoundError(f"session {session_id} not found", document_type=UserSession)

    async def revoke_by_user(self, user_id: PydanticObjectId) -> int:
        """Revoke every live session of a user (sign out everywhere)."""
        return await self.update_many(
            {"user_id": user_id, "revoked_at": None}, {"revoked_at": utcnow()}
        )


class UserRelationshipRepository(Repository[UserRelationship]):
    """Contacts, blocks and mutes between users of one tenant."""

    document_type = UserRelationship

    async def get_or_create(
        self,
        user_id: PydanticObjectId,
        other_user_id: PydanticObjectId,
        kind: RelationshipKind,
        *,
        nickname: str | None = None,
    ) -> UserRelationship:
        """Create the edge; adding an existing edge returns it (idempotent)."""
        probe = UserRelationship(  # validates, e.g. refuses a self-edge
            user_id=user_id, other_user_id=other_user_id, kind=kind, nickname=nickname
        )
        key = {"user_id": user_id, "other_user_id": other_user_id, "kind": kind}
        collection = self.collection()
        await collection.update_one(
            key, {"$setOnInsert": {"nickname": probe.nickname, "schema_version": 1}}, upsert=True
        )
        raw = await collection.find_one(key)
        assert raw is not None
        return self._load(raw)

    async def delete_by_users(
        self, user_id: PydanticObjectId, other_user_id: PydanticObjectId, kind: RelationshipKind
    ) -> bool:
        """Remove the edge; returns whether there was one."""
        result = await self.collection().delete_one(
            {"user_id": user_id, "other_user_id": other_user_id, "kind": kind}
        )
        return bool(result.deleted_count)

    async def list_by_user(
        self, user_id: PydanticObjectId, kind: RelationshipKind, *, after: str | None = None
    ) -> Any:
        """A page of `user_id`'s edges of one kind."""
        return await self.find({"user_id": user_id, "kind": kind}, after=after)

    async def is_blocked(self, sender: PydanticObjectId, recipient: PydanticObjectId) -> bool:
        """Whether `recipient` blocked `sender` (checked before delivering a message)."""
        return await self.exists(
            {"user_id": recipient, "other_user_id": sender, "kind": RelationshipKind.BLOCKED}
        )
