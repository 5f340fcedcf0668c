"""Groups domain (seed: saas/groups): group chats and their memberships.

`Group.member_count` and `Group.owner_count` count the *active* membership documents; only
`GroupRepository` changes memberships, and it changes a membership and the counts in one
transaction, so they never drift apart.

A membership is never deleted when someone leaves or is removed: its `status` changes. The
unique (tenant, group, user) key then still holds, history stays (who removed whom), and a
rejoin is an update of the same document.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from beanie import PydanticObjectId
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from caas_data.documents.base import SoftDeleteMixin, TenantDocument, utcnow

__all__ = [
    "DOCUMENTS",
    "Group",
    "GroupMember",
    "GroupRole",
    "GroupVisibility",
    "MembershipStatus",
]


class GroupRole(StrEnum):
    """What a member may do: owners everything, admins manage members, members chat."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class MembershipStatus(StrEnum):
    """Whether a membership is current; LEFT and REMOVED keep the history."""

    ACTIVE = "active"
    LEFT = "left"
    REMOVED = "removed"


class GroupVisibility(StrEnum):
    """Public groups can be joined by anyone; private ones only by being added."""

    PUBLIC = "public"
    PRIVATE = "private"


class Group(SoftDeleteMixin, TenantDocument):
    """A group chat; soft-deleted so an owner can undo a deletion."""

    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    avatar_url: str | None = Field(default=None, max_length=2048)
    visibility: GroupVisibility = GroupVisibility.PRIVATE
    created_by: PydanticObjectId
    conversation_id: PydanticObjectId | None = Field(
        default=None, description="The messaging conversation of this group."
    )
    max_members: int = Field(default=1024, ge=2, le=200_000)
    member_count: int = Field(default=0, ge=0, description="Active members (maintained).")
    owner_count: int = Field(default=0, ge=0, description="Active owners (maintained).")
    metadata: dict[str, Any] = Field(default_factory=dict)

    class Settings:
        name = "groups"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("created_at", DESCENDING)], name="tenant_created"
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("visibility", ASCENDING), ("name", ASCENDING)],
                name="tenant_directory",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("created_by", ASCENDING)], name="tenant_created_by"
            ),
        ]


class GroupMember(TenantDocument):
    """One user's membership of one group (current or past)."""

    group_id: PydanticObjectId
    user_id: PydanticObjectId
    role: GroupRole = GroupRole.MEMBER
    status: MembershipStatus = MembershipStatus.ACTIVE
    joined_at: datetime = Field(default_factory=utcnow)
    left_at: datetime | None = None
    added_by: PydanticObjectId | None = None
    removed_by: PydanticObjectId | None = None

    class Settings:
        name = "group_members"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("group_id", ASCENDING), ("user_id", ASCENDING)],
                unique=True,
                name="tenant_group_user_unique",
            ),
            IndexModel(
                [
                    ("tenant_id", ASCENDING),
                    ("group_id", ASCENDING),
                    ("status", ASCENDING),
                    ("role", ASCENDING),
                ],
                name="tenant_group_members",
            ),
            IndexModel(
                [
                    ("tenant_id", ASCENDING),
                    ("user_id", ASCENDING),
                    ("status", ASCENDING),
                    ("joined_at", DESCENDING),
                ],
                name="tenant_user_groups",
            ),
        ]

    @property
    def is_active(self) -> bool:
        """True while the user is in the group."""
        return self.status is MembershipStatus.ACTIVE

    @property
    def manages_members(self) -> bool:
        """True for active owners and admins."""
        return self.is_active and self.role in (GroupRole.OWNER, GroupRole.ADMIN)


DOCUMENTS: tuple[type[TenantDocument], ...] = (Group, GroupMember)
