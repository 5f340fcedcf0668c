"""Erasure: a whole tenant (`erase_tenant`), or one end user under GDPR (`erase_user`).

Tenant erasure policy:

- Everything the tenant owns goes: its data at its placement (database, collection set or
  shared rows), its credentials (revoked first, by `deprovision`), its platform, billing and
  analytics rows, its audit trail, its migration ledger, its directory tombstone.
- Invoices are kept for the legal retention period, anonymised: their `tenant_id` becomes a
  pseudonym (`erased-` + 16 hex of SHA-256 of `prefix:tenant_id`) and nothing else in them
  names the tenant. The operator who knows the id can find them again by its pseudonym; a scan
  for the id finds nothing.
- The platform's audit chain gets one `tenant.erased` entry (and the purge's own entry),
  naming the pseudonym, never the id.
- It needs `confirm=` equal to the tenant id.

User erasure (`erase_user`) works inside the tenant's scope, through the guard: the user's
messages stay in their conversations as a "deleted user" (`DELETED_USER_ID` as sender, text,
attachments, edit history and search terms removed), reactions, read receipts, devices,
sessions, keys, prekey bundles, relationships (both directions), files, their metadata and
posts are deleted, memberships are deleted with each group's member and owner counts
decremented, and the user's row is deleted. The tenant's analytics events naming the user
(`user_id` equal to its id, its `external_id` or a string the caller names) are deleted too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bson import ObjectId

from caas_data.documents.analytics import PLATFORM_AUDIT_TENANT, Event
from caas_data.documents.base import BaseDocument, utcnow
from caas_data.documents.billing import Invoice
from caas_data.documents.registry import spec_of
from caas_data.documents.saas.encryption import PrekeyBundle, UserKey
from caas_data.documents.saas.groups import Group, GroupMember, GroupRole, MembershipStatus
from caas_data.documents.saas.media import MediaFile, MediaMetadata, Post
from caas_data.documents.saas.messaging import Conversation, Message, Reaction, ReadReceipt
from caas_data.documents.saas.users import (
    DELETED_USER_ID,
    User,
    UserDevice,
    UserRelationship,
    UserSession,
)
from caas_data.driver_errors import translate_driver_errors
from caas_data.errors import DocumentValidationError, NotFoundError, OperationRefused
from caas_data.operations._common import pseudonym, require_operator_scope
from caas_data.repositories.analytics.audit import AuditLogRepository
from caas_data.tenancy.ids import validate_tenant_id

if TYPE_CHECKING:
    from caas_data.layer import DataLayer
    from caas_data.tenancy.guard import GuardedCollection

_EVENT_USER_ID_MAX = 128  # Event.user_id's own bound

__all__ = [
    "DELETED_USER_ID",
    "TenantErasure",
    "UserErasure",
    "erase_tenant",
    "erase_user",
    "export_user",
]


@dataclass(slots=True)
class TenantErasure:
    """What `erase_tenant` did: rows deleted per `database.collection`, invoices kept."""

    tenant_id: str
    pseudonym: str
    deleted: dict[str, int] = field(default_factory=dict)
    invoices_kept: int = 0


@dataclass(slots=True)
class UserErasure:
    """What `erase_user` did, per collection: rows `deleted` and rows `anonymised`."""

    tenant_id: str
    user_id: str
    deleted: dict[str, int] = field(default_factory=dict)
    anonymised: dict[str, int] = field(default_factory=dict)


async def erase_tenant(
    layer: DataLayer, tenant_id: str, *, confirm: str | None, actor: str | None = None
) -> TenantErasure:
    """Erase a tenant everywhere, keeping only its invoices, anonymised (see the module).

    Re-running it after an interruption finishes the work.

    Raises:
        OperationRefused: `confirm` is not the tenant id.
        UnsafeOperation: the directory points the tenant at a place it cannot own.
        TenantMismatch: called inside a tenant scope.
    """
    validate_tenant_id(tenant_id)
    require_operator_scope("erase", tenant_id)
    if confirm != tenant_id:
        raise OperationRefused(
            "erasing a tenant deletes all of its data for good: confirm with its id "
            "(`confirm=tenant_id`, `--confirm <tenant>` on the command line)",
            tenant_id=tenant_id,
        )
    label = pseudonym(layer, tenant_id)
    report = TenantErasure(tenant_id, label)
    # The census first: deprovisioning deletes the placement's data before the purge runs.
    before = await layer.tenants.retained_rows(tenant_id)
    await layer.tenants.deprovision(tenant_id, actor=actor)
    invoices = layer.unguarded_platform_collection(
        Invoice, why="erasure keeps invoices for the legal period under a pseudonym"
    )
    with translate_driver_errors(tenant_id=tenant_id, document_type=Invoice):
        await invoices.update_many(
            {"tenant_id": tenant_id}, {"$set": {"tenant_id": label, "updated_at": utcnow()}}
        )
        report.invoices_kept = await invoices.count_documents({"tenant_id": label})
    purged = await layer.tenants.purge_retained(tenant_id, actor=actor, label=label)
    invoices_key = f"{layer.database_name(Invoice.caas_area)}.invoices"
    report.deleted = {k: v for k, v in before.items() if k != invoices_key}
    for key, rows in purged.items():  # what deprovisioning added (its audit entry...)
        report.deleted.setdefault(key.replace(label, tenant_id), rows)
    with translate_driver_errors(tenant_id=tenant_id):
        # Its own database, if it ever had one, is gone with its collections; drop the name.
        own = f"{layer.prefix}_{tenant_id}"
        if own in await layer.client.list_database_names():
            await layer.client.drop_database(own)
            layer.forget_ensured(own)
    await layer.repo(AuditLogRepository).append(
        "tenant.erased",
        tenant_id=PLATFORM_AUDIT_TENANT,
        actor=actor,
        target_type="tenant",
        target_id=label,
        details={
            "rows_deleted": sum(report.deleted.values()),
            "invoices_kept_anonymised": report.invoices_kept,
        },
    )
    return report


def _user_id(user_id: str | ObjectId) -> ObjectId:
    try:
        return user_id if isinstance(user_id, ObjectId) else ObjectId(user_id)
    except (TypeError, ValueError) as exc:
        raise NotFoundError(f"no user {user_id!r} (not an id)") from exc


def _handle(layer: DataLayer, document_type: type[BaseDocument]) -> GuardedCollection:
    """The scope's guarded collection, soft-deleted rows included (they are the user's too).

    Not privileged: erasure changes no field the layer owns.
    """
    return layer.collection(document_type, include_deleted=True)


def _event_ids(uid: ObjectId, user: Mapping[str, Any], extra: Iterable[str]) -> list[str]:
    """The strings analytics events may name the user by: its id, external id, and `extra`.

    Raises:
        DocumentValidationError: `extra` is a string, or holds anything but short strings.
    """
    if isinstance(extra, str | bytes) or not isinstance(extra, Iterable):
        raise DocumentValidationError(
            "event_user_ids must be a list of strings", fields=("event_user_ids",)
        )
    given = list(extra)
    for value in given:
        if type(value) is not str or not 1 <= len(value) <= _EVENT_USER_ID_MAX:
            raise DocumentValidationError(
                f"event_user_ids holds {value!r}: each must be a string of 1 to "
                f"{_EVENT_USER_ID_MAX} characters",
                fields=("event_user_ids",),
            )
    external = user.get("external_id")
    names = {str(uid), *given, *([external] if isinstance(external, str) else [])}
    return sorted(names)


async def _erase_events(layer: DataLayer, tenant_id: str, names: list[str]) -> int:
    """Delete the tenant's analytics events naming the user (past the append-only guard)."""
    events = layer.unguarded_platform_collection(
        Event, why="erase_user deletes the user's own events from the append-only analytics log"
    )
    with translate_driver_errors(tenant_id=tenant_id, document_type=Event):
        result = await events.delete_many({"tenant_id": tenant_id, "user_id": {"$in": names}})
    return int(result.deleted_count)


async def erase_user(
    layer: DataLayer,
    tenant_id: str,
    user_id: str | ObjectId,
    *,
    actor: str | None = None,
    event_user_ids: Iterable[str] = (),
) -> UserErasure:
    """Erase one end user of a tenant across every domain (GDPR art. 17); a report.

    The tenant's analytics events naming the user (`Event.user_id` equal to the user's id,
    its `external_id`, or one of `event_user_ids`, the application's own strings for it)
    are deleted too.

    Raises:
        NotFoundError: the tenant has no such user.
        DocumentValidationError: `event_user_ids` is not a list of strings (before any write).
        TenantNotFound: the tenant is not live.
        TenantMismatch: called inside a tenant scope.
    """
    validate_tenant_id(tenant_id)
    require_operator_scope("erase_user", tenant_id)
    uid = _user_id(user_id)
    report = UserErasure(tenant_id, str(uid))
    async with layer.tenant_scope(tenant_id):
        users = _handle(layer, User)
        found = await users.find_one({"_id": uid}, {"_id": 1, "external_id": 1})
        if found is None:
            raise NotFoundError(f"no user {uid}", tenant_id=tenant_id, document_type=User)
        event_names = _event_ids(uid, found, event_user_ids)

        def name(document_type: type[BaseDocument]) -> str:
            return spec_of(document_type).name

        result = await _handle(layer, Message).update_many(
            {"sender_id": uid},
            {
                "$set": {
                    "sender_id": DELETED_USER_ID,
                    "text": None,
                    "attachments": [],
                    "edits": [],
                    "terms": [],
                }
            },
        )
        report.anonymised[name(Message)] = result.modified_count
        conversations = _handle(layer, Conversation)
        previews = await conversations.update_many(
            {"last_message.sender_id": uid},
            {"$set": {"last_message.sender_id": DELETED_USER_ID, "last_message.text": None}},
        )
        left = await conversations.update_many(
            {"participant_ids": uid}, {"$pull": {"participant_ids": uid}}
        )
        await conversations.update_many(
            {"created_by": uid}, {"$set": {"created_by": DELETED_USER_ID}}
        )
        report.anonymised[name(Conversation)] = previews.modified_count + left.modified_count
        report.deleted[name(GroupMember)] = await _leave_groups(layer, uid)
        groups = await _handle(layer, Group).update_many(
            {"created_by": uid}, {"$set": {"created_by": DELETED_USER_ID}}
        )
        report.anonymised[name(Group)] = groups.modified_count
        for document_type, query in (
            (Reaction, {"user_id": uid}),
            (ReadReceipt, {"user_id": uid}),
            (UserDevice, {"user_id": uid}),
            (UserSession, {"user_id": uid}),
            (UserKey, {"user_id": uid}),
            (PrekeyBundle, {"user_id": uid}),
            (UserRelationship, {"$or": [{"user_id": uid}, {"other_user_id": uid}]}),
            (Post, {"author_id": uid}),
        ):
            deleted = await _handle(layer, document_type).delete_many(query)
            report.deleted[name(document_type)] = deleted.deleted_count
        files = _handle(layer, MediaFile)
        file_ids = [f["_id"] async for f in files.find({"uploader_id": uid}, {"_id": 1})]
        metadata = await _handle(layer, MediaMetadata).delete_many({"file_id": {"$in": file_ids}})
        report.deleted[name(MediaMetadata)] = metadata.deleted_count
        report.deleted[name(MediaFile)] = (
            await files.delete_many({"uploader_id": uid})
        ).deleted_count
        report.deleted[name(User)] = (await users.delete_many({"_id": uid})).deleted_count
    report.deleted[spec_of(Event).name] = await _erase_events(layer, tenant_id, event_names)
    async with layer.tenant_scope(tenant_id):
        await layer.repo(AuditLogRepository).append(
            "user.erased",
            actor=actor,
            target_type="user",
            target_id=str(uid),
            details={"deleted": dict(report.deleted), "anonymised": dict(report.anonymised)},
        )
    return report


async def _leave_groups(layer: DataLayer, uid: ObjectId) -> int:
    """Delete the user's memberships, taking active ones off their groups' counts."""
    members = _handle(layer, GroupMember)
    groups = _handle(layer, Group)
    deleted = 0
    async for member in members.find({"user_id": uid}):
        if member.get("status") == MembershipStatus.ACTIVE.value:
            owner = 1 if member.get("role") == GroupRole.OWNER.value else 0
            await groups.update_one(
                {"_id": member["group_id"]},
                {"$inc": {"member_count": -1, "owner_count": -owner}},
            )
        deleted += (await members.delete_one({"_id": member["_id"]})).deleted_count
    return deleted


async def export_user(
    layer: DataLayer, tenant_id: str, user_id: str | ObjectId
) -> dict[str, list[dict[str, Any]]]:
    """The user's own data (GDPR art. 15/20): logical collection -> stored documents.

    Raises:
        NotFoundError: the tenant has no such user.
        TenantNotFound: the tenant is not live.
        TenantMismatch: called inside a tenant scope.
    """
    validate_tenant_id(tenant_id)
    require_operator_scope("export_user", tenant_id)
    uid = _user_id(user_id)
    async with layer.tenant_scope(tenant_id):
        found = await _handle(layer, User).find_one({"_id": uid}, {"_id": 1, "external_id": 1})
    if found is None:
        raise NotFoundError(f"no user {uid}", tenant_id=tenant_id, document_type=User)
    queries: list[tuple[type[BaseDocument], dict[str, Any]]] = [
        (User, {"_id": uid}),
        (UserDevice, {"user_id": uid}),
        (UserSession, {"user_id": uid}),
        (UserRelationship, {"user_id": uid}),
        (Message, {"sender_id": uid}),
        (Reaction, {"user_id": uid}),
        (ReadReceipt, {"user_id": uid}),
        (GroupMember, {"user_id": uid}),
        (MediaFile, {"uploader_id": uid}),
        (Post, {"author_id": uid}),
        (UserKey, {"user_id": uid}),
        (PrekeyBundle, {"user_id": uid}),
        (Event, {"user_id": {"$in": _event_ids(uid, found, ())}}),
    ]
    result: dict[str, list[dict[str, Any]]] = {}
    async with layer.tenant_scope(tenant_id):
        for document_type, query in queries:
            cursor = layer.collection(document_type, include_deleted=True).find(
                query, sort=[("_id", 1)]
            )
            result[spec_of(document_type).name] = [raw async for raw in cursor]
    return result
