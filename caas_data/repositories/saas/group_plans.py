"""Group membership plans: what a change does, as pure functions of the current state.

`GroupRepository._change_membership` reads the group and the memberships involved, asks a
plan for the new memberships (or why the change is refused), and writes the result in one
transaction. Kept apart from the repositories: no I/O here, so each rule reads on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from beanie import PydanticObjectId

from caas_data.documents.saas.groups import (
    Group,
    GroupMember,
    GroupRole,
    GroupVisibility,
    MembershipStatus,
)
from caas_data.errors import DocumentValidationError, NotFoundError

__all__ = [
    "Changes",
    "Current",
    "Plan",
    "UserId",
    "forbidden",
    "join_plan",
    "kick_plan",
    "leave_plan",
    "member_counts",
    "refused",
    "role_plan",
    "transfer_plan",
]

ACTIVE: Final = MembershipStatus.ACTIVE
UserId = PydanticObjectId
Current = Mapping[UserId, GroupMember | None]
Changes = dict[UserId, dict[str, Any]]
Plan = Callable[[Group, Current, datetime], Changes]


# -- refusals ----------------------------------------------------------------------------
# Proposed: `PermissionDenied` and `InvalidStateError` subclasses of RepositoryError; until
# then both are DocumentValidationError (a ValueError naming the argument at fault).


def forbidden(message: str, field: str) -> DocumentValidationError:
    """The caller may not do this (a role or ownership rule)."""
    return DocumentValidationError(message, fields=(field,), document_type=GroupMember)


def refused(message: str, field: str) -> DocumentValidationError:
    """The change would break a rule of the group (capacity, last owner)."""
    return DocumentValidationError(message, fields=(field,), document_type=Group)


def not_member(group: Group, user_id: UserId) -> NotFoundError:
    return NotFoundError(
        f"user {user_id} is not a member of group {group.id}", document_type=GroupMember
    )


def active_member(current: Current, user_id: UserId) -> GroupMember | None:
    member = current.get(user_id)
    return member if member is not None and member.is_active else None


def manager(group: Group, current: Current, actor_id: UserId, action: str) -> GroupMember:
    actor = active_member(current, actor_id)
    if actor is None or not actor.manages_members:
        raise forbidden(
            f"user {actor_id} may not {action} in group {group.id}: only its owners and admins may",
            "actor",
        )
    return actor


def keep_an_owner(group: Group, target: GroupMember, what: str) -> None:
    if target.role is GroupRole.OWNER and group.owner_count <= 1:
        raise refused(
            f"user {target.user_id} is the last owner of group {group.id} and cannot {what}: "
            "transfer_ownership() to another member first",
            "user_id",
        )


# -- plans: what a change does, as pure functions of the current state -----------------------


def join_plan(user_id: UserId, added_by: UserId | None) -> Plan:
    """Join: a private group (or a removed user) only when added by an owner or admin."""

    def plan(group: Group, current: Current, now: datetime) -> Changes:
        member = current.get(user_id)
        if member is not None and member.is_active:
            return {}  # already in: joining again changes nothing
        if added_by is not None and added_by != user_id:
            adder = active_member(current, added_by)
            if adder is None:
                raise forbidden(f"user {added_by} is not a member of group {group.id}", "actor")
            if group.visibility is GroupVisibility.PRIVATE and not adder.manages_members:
                raise forbidden(
                    f"only owners and admins add members to private group {group.id}", "actor"
                )
        elif group.visibility is GroupVisibility.PRIVATE:
            raise forbidden(
                f"group {group.id} is private: an owner or admin must add the user",
                "actor",
            )
        elif member is not None and member.status is MembershipStatus.REMOVED:
            raise forbidden(
                f"user {user_id} was removed from group {group.id}: only an owner or admin "
                "can add them back",
                "actor",
            )
        return {
            user_id: {
                "status": ACTIVE,
                "role": GroupRole.MEMBER,
                "joined_at": now,
                "left_at": None,
                "added_by": added_by,
                "removed_by": None,
            }
        }

    return plan


def leave_plan(user_id: UserId) -> Plan:
    """Leave the group; the last owner may not."""

    def plan(group: Group, current: Current, now: datetime) -> Changes:
        member = active_member(current, user_id)
        if member is None:
            raise not_member(group, user_id)
        keep_an_owner(group, member, "leave")
        return {user_id: {"status": MembershipStatus.LEFT, "left_at": now}}

    return plan


def kick_plan(user_id: UserId, by: UserId) -> Plan:
    """Remove another member: by an owner or admin; only an owner removes an owner."""

    def plan(group: Group, current: Current, now: datetime) -> Changes:
        actor = manager(group, current, by, "remove members")
        if by == user_id:
            raise refused("a member cannot remove themself: use leave()", "user_id")
        target = active_member(current, user_id)
        if target is None:
            raise not_member(group, user_id)
        if target.role is GroupRole.OWNER and actor.role is not GroupRole.OWNER:
            raise forbidden(f"admins cannot remove an owner of group {group.id}", "actor")
        keep_an_owner(group, target, "be removed")
        return {user_id: {"status": MembershipStatus.REMOVED, "left_at": now, "removed_by": by}}

    return plan


def role_plan(user_id: UserId, role: GroupRole, by: UserId) -> Plan:
    """Change a member's role: by an owner or admin; only owners grant or revoke ownership."""

    def plan(group: Group, current: Current, now: datetime) -> Changes:
        actor = manager(group, current, by, "change roles")
        target = active_member(current, user_id)
        if target is None:
            raise not_member(group, user_id)
        if target.role is role:
            return {}
        if actor.role is not GroupRole.OWNER and GroupRole.OWNER in (role, target.role):
            raise forbidden(f"only owners grant or revoke ownership of group {group.id}", "actor")
        if role is not GroupRole.OWNER:
            keep_an_owner(group, target, "be demoted")
        return {user_id: {"role": role}}

    return plan


def transfer_plan(from_user_id: UserId, to_user_id: UserId) -> Plan:
    """An owner hands ownership to an active member and becomes an admin."""

    def plan(group: Group, current: Current, now: datetime) -> Changes:
        if from_user_id == to_user_id:
            raise refused("ownership must go to another member", "to_user_id")
        giver = active_member(current, from_user_id)
        if giver is None or giver.role is not GroupRole.OWNER:
            raise forbidden(
                f"user {from_user_id} is not an owner of group {group.id}", "from_user_id"
            )
        if active_member(current, to_user_id) is None:
            raise not_member(group, to_user_id)
        return {to_user_id: {"role": GroupRole.OWNER}, from_user_id: {"role": GroupRole.ADMIN}}

    return plan


def member_counts(members: Sequence[GroupMember | None]) -> tuple[int, int]:
    """Active members and owners among `members` (None: not a member)."""
    active = [m for m in members if m is not None and m.is_active]
    return len(active), sum(1 for m in active if m.role is GroupRole.OWNER)
