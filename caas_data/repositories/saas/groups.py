"""Groups repositories: membership changes that keep the group's counts exact.

Every membership change (join, leave, kick, role change, ownership transfer) goes through
one helper, `GroupRepository._change_membership`, which in one transaction:

1. reads the group and the memberships involved;
2. asks a pure *plan* function what the new memberships are (or why the change is refused);
3. writes the group's `member_count`/`owner_count` deltas, computed from before and after,
   and then the memberships.

Every change writes the group document first, so concurrent changes to one group conflict
there and `transaction()` re-runs the loser on the new state. That also rules out write
skew on the "at least one owner" rule: two owners leaving at once cannot both see the other
one stay. Within one process, changes to one group also wait for each other (the group is
the transaction's `hot_key`): they would only conflict and retry otherwise, and on a hot group
the retries, not the work, would dominate. Across processes the transaction alone keeps the
counts right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from beanie import PydanticObjectId

from caas_data.documents.base import utcnow
from caas_data.documents.saas.groups import (
    Group,
    GroupMember,
    GroupRole,
    GroupVisibility,
    MembershipStatus,
)
from caas_data.documents.writes import dump_document, raise_write_miss, stamp_new
from caas_data.engine.transactions import transaction
from caas_data.repositories.base import Page, Repository
from caas_data.repositories.saas.group_plans import (
    Changes,
    Current,
    Plan,
    UserId,
    forbidden,
    join_plan,
    kick_plan,
    leave_plan,
    member_counts,
    refused,
    role_plan,
    transfer_plan,
)
from caas_data.repositories.saas.settings import TenantSettingsRepository
from caas_data.repositories.values import parse_id

__all__ = ["GroupMemberRepository", "GroupRepository"]

ACTIVE: Final = MembershipStatus.ACTIVE
# -- repositories ------------------------------------------------------------------------


class GroupMemberRepository(Repository[GroupMember]):
    """Reads of memberships. Change them through `GroupRepository`, which keeps the counts."""

    document_type = GroupMember

    async def get_membership_or_none(
        self, group_id: Any, user_id: PydanticObjectId
    ) -> GroupMember | None:
        """The membership of a user in a group, current or past; None if never a member."""
        return await self.find_one(
            {"group_id": parse_id(group_id, "group_id", document_type=Group), "user_id": user_id}
        )

    async def is_member(self, group_id: Any, user_id: PydanticObjectId) -> bool:
        """Whether the user is an active member."""
        return await self.exists(
            {
                "group_id": parse_id(group_id, "group_id", document_type=Group),
                "user_id": user_id,
                "status": ACTIVE,
            }
        )

    async def list_by_group(
        self,
        group_id: Any,
        *,
        role: GroupRole | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> Page[GroupMember]:
        """A page of the active members of a group (optionally of one role)."""
        query: dict[str, Any] = {
            "group_id": parse_id(group_id, "group_id", document_type=Group),
            "status": ACTIVE,
        }
        if role is not None:
            query["role"] = GroupRole(role)
        return await self.find(query, after=after, limit=limit)

    async def list_by_user(
        self, user_id: PydanticObjectId, *, after: str | None = None, limit: int = 50
    ) -> Page[GroupMember]:
        """A page of a user's active memberships, most recently joined first."""
        return await self.find(
            {"user_id": user_id, "status": ACTIVE}, sort="-joined_at", after=after, limit=limit
        )


class GroupRepository(Repository[Group]):
    """Groups, and every change of their membership."""

    document_type = Group

    @property
    def _members(self) -> GroupMemberRepository:
        return self.layer.repo(GroupMemberRepository)

    async def create_with_members(
        self,
        *,
        name: str,
        owner_id: PydanticObjectId,
        visibility: GroupVisibility | str = GroupVisibility.PRIVATE,
        member_ids: Sequence[PydanticObjectId] = (),
        description: str | None = None,
        avatar_url: str | None = None,
        conversation_id: PydanticObjectId | None = None,
        max_members: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Group:
        """Create a group owned by `owner_id`, with `member_ids` as its first members.

        `max_members` defaults to, and may not exceed, the tenant's
        `limits.max_group_members`.

        Raises:
            DocumentValidationError: a field is invalid, or more members than allowed.
        """
        tenant_cap = (
            await self.layer.repo(TenantSettingsRepository).get_settings()
        ).limits.max_group_members
        others = list(dict.fromkeys(m for m in member_ids if m != owner_id))
        group = self._validate(
            {
                "name": name,
                "visibility": visibility,
                "created_by": owner_id,
                "description": description,
                "avatar_url": avatar_url,
                "conversation_id": conversation_id,
                "max_members": tenant_cap if max_members is None else max_members,
                "member_count": 1 + len(others),
                "owner_count": 1,
                "metadata": dict(metadata or {}),
            }
        )
        if group.max_members > tenant_cap:
            raise refused(
                f"max_members {group.max_members} exceeds the tenant's limit of {tenant_cap}",
                "max_members",
            )
        if group.member_count > group.max_members:
            raise refused(
                f"{group.member_count} members exceed max_members {group.max_members}",
                "member_ids",
            )

        async def create() -> Group:
            stored = await self.create(group.model_copy())
            now = utcnow()
            memberships = [
                GroupMember(
                    group_id=stored.id,
                    user_id=user_id,
                    role=GroupRole.OWNER if user_id == owner_id else GroupRole.MEMBER,
                    joined_at=now,
                    added_by=None if user_id == owner_id else owner_id,
                )
                for user_id in [owner_id, *others]
            ]
            await self._members.create_many(memberships)
            return stored

        return await transaction(self.layer, create)

    # -- membership changes ----------------------------------------------------------------

    async def join(
        self, group_id: Any, user_id: PydanticObjectId, *, actor: PydanticObjectId | None = None
    ) -> GroupMember:
        """Make the user an active member (idempotent); a rejoin reuses the old membership.

        Anyone may join a public group; a private group, or a user who was removed, needs
        `actor`, an owner or admin of the group.

        Raises:
            NotFoundError: no such group (or it is deleted).
            DocumentValidationError: not allowed (`fields` names `actor`), or the group is
                full (`max_members`).
        """
        users = [user_id] if actor is None else [user_id, actor]
        changed = await self._change_membership(group_id, users, join_plan(user_id, actor))
        return changed[user_id]

    async def leave(self, group_id: Any, user_id: PydanticObjectId) -> GroupMember:
        """End the user's membership (status left).

        Raises:
            NotFoundError: no such group, or the user is not an active member.
            DocumentValidationError: the user is the last owner (transfer ownership first).
        """
        changed = await self._change_membership(group_id, [user_id], leave_plan(user_id))
        return changed[user_id]

    async def kick(
        self, group_id: Any, user_id: PydanticObjectId, *, actor: PydanticObjectId
    ) -> GroupMember:
        """Remove a member (status removed); only owners and admins, admins not owners.

        Raises:
            NotFoundError: no such group, or the user is not an active member.
            DocumentValidationError: `actor` may not remove this member (`fields` names `actor`).
        """
        changed = await self._change_membership(
            group_id, [user_id, actor], kick_plan(user_id, actor)
        )
        return changed[user_id]

    async def set_role(
        self,
        group_id: Any,
        user_id: PydanticObjectId,
        role: GroupRole | str,
        *,
        actor: PydanticObjectId,
    ) -> GroupMember:
        """Promote or demote a member; only owners touch ownership, the last owner stays.

        Raises:
            NotFoundError: no such group, or the user is not an active member.
            DocumentValidationError: not allowed, or it would leave the group without owner.
        """
        try:
            new_role = GroupRole(role)
        except ValueError:
            raise refused(f"unknown role {role!r}", "role") from None
        plan = role_plan(user_id, new_role, actor)
        changed = await self._change_membership(group_id, [user_id, actor], plan)
        return changed[user_id]

    async def transfer_ownership(
        self, group_id: Any, *, from_user_id: PydanticObjectId, to_user_id: PydanticObjectId
    ) -> tuple[GroupMember, GroupMember]:
        """Make `to_user_id` an owner and step `from_user_id` down to admin, atomically.

        Returns (new owner, previous owner).
        """
        plan = transfer_plan(from_user_id, to_user_id)
        changed = await self._change_membership(group_id, [from_user_id, to_user_id], plan)
        return changed[to_user_id], changed[from_user_id]

    async def soft_delete(self, document_or_id: Any, *, actor: Any = None) -> Group:
        """Soft-delete a group; `restore()` undoes it, memberships intact.

        With `actor` (a user id), only an active owner may; without it the call is the
        service's own (as for every repository's `delete`).

        Raises:
            DocumentValidationError: `actor` is not an owner (`fields` names `actor`).
        """
        if actor is None:
            return await super().soft_delete(document_or_id)
        group = await self.get(document_or_id)
        member = await self._members.get_membership_or_none(group.id, actor)
        if member is None or not member.is_active or member.role is not GroupRole.OWNER:
            raise forbidden(f"only an owner may delete group {group.id}", "actor")
        return await super().soft_delete(group.id, actor=actor)

    async def purge(self, document_or_id: Any) -> None:
        """Delete a group and all its memberships for good, in one transaction."""
        group_id = self._id(document_or_id)
        base_purge = super().purge

        async def purge_all() -> None:
            await base_purge(group_id)
            await self._members.collection().delete_many({"group_id": group_id})

        await transaction(self.layer, purge_all)

    async def _change_membership(
        self, group_id: Any, user_ids: Sequence[UserId], plan: Plan
    ) -> dict[UserId, GroupMember]:
        """Apply `plan` to the current memberships of `user_ids`, counts included, atomically.

        Returns the memberships of `user_ids` afterwards (unchanged ones as they were).
        """
        target = parse_id(group_id, "group_id", document_type=Group)
        members = self._members
        key = ("group", self.collection().rules.tenant_id, target)

        async def attempt() -> dict[UserId, GroupMember]:
            group = await self.get(target)
            raws = (
                await members.collection()
                .find({"group_id": target, "user_id": {"$in": list(user_ids)}})
                .to_list(None)
            )
            current: dict[UserId, GroupMember | None] = {u: None for u in user_ids}
            current.update({m.user_id: m for m in map(members._load, raws)})
            now = utcnow()
            changes = plan(group, current, now)
            if not changes:
                return {u: m for u, m in current.items() if m is not None}
            after = self._apply(target, current, changes, now)
            count, owners = member_counts(list(after.values()))
            before_count, before_owners = member_counts([current[u] for u in after])
            member_delta, owner_delta = count - before_count, owners - before_owners
            if member_delta > 0 and group.member_count + member_delta > group.max_members:
                raise refused(
                    f"group {group.id} is full ({group.max_members} members)", "max_members"
                )
            if group.owner_count + owner_delta < 1:  # the plans refuse first; never trust one
                raise refused(f"group {group.id} would have no owner", "user_id")
            # The group first: concurrent changes of this group conflict here (see module doc).
            counted = await self.collection().update_one(
                {"_id": target, "__v": group.version},
                {"$inc": {"member_count": member_delta, "owner_count": owner_delta}},
                stamp_time=now,
            )
            if counted.matched_count != 1:  # only without transaction isolation
                await raise_write_miss(self.collection(), Group, target, group.version)
            await self._write_members(current, after, changes, now)
            return {**{u: m for u, m in current.items() if m is not None}, **after}

        return await transaction(self.layer, attempt, hot_key=key)

    @staticmethod
    def _apply(
        group_id: Any, current: Current, changes: Changes, now: datetime
    ) -> dict[UserId, GroupMember]:
        """The memberships after `changes` (new ones not stored yet)."""
        after = {}
        for user_id, fields in changes.items():
            before = current.get(user_id)
            if before is None:
                after[user_id] = GroupMember(group_id=group_id, user_id=user_id, **fields)
            else:
                update = {**fields, "updated_at": now, "version": before.version + 1}
                after[user_id] = before.model_copy(update=update)
        return after

    async def _write_members(
        self,
        current: Current,
        after: Mapping[UserId, GroupMember],
        changes: Changes,
        now: datetime,
    ) -> None:
        collection = self._members.collection()
        for user_id, member in after.items():
            before = current.get(user_id)
            if before is None:
                stamp_new(member)
                await collection.insert_one(dump_document(member))
                continue
            stored = dump_document(member)
            result = await collection.update_one(
                {"_id": before.id, "__v": before.version},
                {"$set": {name: stored[name] for name in changes[user_id]}},
                stamp_time=now,
            )
            if result.matched_count != 1:  # written outside this repository: abort it all
                await raise_write_miss(collection, GroupMember, before.id, before.version)
