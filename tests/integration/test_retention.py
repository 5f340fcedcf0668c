"""Retention: each tenant's settings decide what its retention run removes, and nothing else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from beanie import PydanticObjectId

from caas_data import (
    DataLayer,
    DocumentValidationError,
    TenantContextMissing,
    TenantMismatch,
    Tier,
    tenant_scope,
)
from caas_data.documents.base import BaseDocument, utcnow
from caas_data.documents.saas.groups import Group
from caas_data.documents.saas.media import MediaFile
from caas_data.documents.saas.messaging import Message, Reaction
from caas_data.repositories.saas.groups import GroupRepository
from caas_data.repositories.saas.media import MediaFileRepository
from caas_data.repositories.saas.messaging import (
    ConversationRepository,
    MessageRepository,
    ReactionRepository,
)
from caas_data.repositories.saas.settings import TenantSettingsRepository
from caas_data.saas import UserRepository
from caas_data.services.retention import RetentionService

TenantFactory = Callable[..., Awaitable[str]]
SHA = "ab" * 32


async def backdate(layer: DataLayer, document: type[BaseDocument], ids: list[Any], **fields: Any):  # type: ignore[no-untyped-def]
    """Move stored timestamps into the past (what time would have done)."""
    # Time travel is a privileged write: the guard refuses timestamps set by hand.
    await (
        layer.collection(document, include_deleted=True)
        ._privileged()
        .update_many({"_id": {"$in": ids}}, {"$set": fields})
    )


async def chat(layer: DataLayer, texts: list[str]) -> tuple[list[Message], PydanticObjectId]:
    users = await layer.repo(UserRepository).create_many(
        [{"external_id": "a", "display_name": "A"}, {"external_id": "b", "display_name": "B"}]
    )
    alice, bob = (u.id for u in users)
    assert alice is not None and bob is not None
    conv = await layer.repo(ConversationRepository).open_direct(alice, bob)
    messages = layer.repo(MessageRepository)
    return [await messages.send(conv.id, alice, text=t) for t in texts], alice


async def test_messages_older_than_the_setting_go_with_their_reactions(
    caas_layer: DataLayer, tenant: str
) -> None:
    now = utcnow()
    async with tenant_scope(tenant):
        (old, recent), alice = await chat(caas_layer, ["old one", "recent one"])
        await caas_layer.repo(ReactionRepository).toggle(old.id, alice, "👍")
        await caas_layer.repo(ReactionRepository).toggle(recent.id, alice, "👍")
        await backdate(caas_layer, Message, [old.id], created_at=now - timedelta(days=40))
        service = RetentionService(caas_layer)

        # Default settings keep messages forever.
        assert (await service.apply(now=now)).messages == 0
        await caas_layer.repo(TenantSettingsRepository).update_section(
            "retention", {"message_retention_days": 30}
        )
        report = await service.apply(now=now)
        assert (report.tenant_id, report.messages, report.ok) == (tenant, 1, True)
        messages = caas_layer.repo(MessageRepository)
        assert await messages.get_or_none(old.id, include_deleted=True) is None
        assert (await messages.get(recent.id)).text == "recent one"
        reactions = caas_layer.collection(Reaction)
        assert await reactions.count_documents({"message_id": old.id}) == 0
        assert await reactions.count_documents({"message_id": recent.id}) == 1
        # Re-running changes nothing.
        assert (await service.apply(now=now)).messages == 0


async def test_soft_deleted_content_is_purged_after_its_grace_period(
    caas_layer: DataLayer, tenant: str
) -> None:
    now = utcnow()
    async with tenant_scope(tenant):
        owner = (
            await caas_layer.repo(UserRepository).create({"external_id": "o", "display_name": "O"})
        ).id
        assert owner is not None
        files = caas_layer.repo(MediaFileRepository)
        kept, expired, live = [
            await files.register(
                name=f"{n}.png",
                mime_type="image/png",
                size_bytes=10,
                sha256=SHA,
                storage_key=f"k/{n}",
                uploader_id=owner,
            )
            for n in ("kept", "expired", "live")
        ]
        for f in (kept, expired):
            await files.soft_delete(f.id, actor=owner)
        await backdate(caas_layer, MediaFile, [expired.id], deleted_at=now - timedelta(days=31))
        groups = caas_layer.repo(GroupRepository)
        group = await groups.create_with_members(name="old team", owner_id=owner)
        await groups.soft_delete(group.id, actor=owner)

        report = await RetentionService(caas_layer).apply(now=now)
        assert (report.files, report.groups, report.posts) == (1, 0, 0)
        assert await files.get_or_none(expired.id, include_deleted=True) is None
        assert (await files.get_or_none(kept.id, include_deleted=True)) is not None
        assert (await files.get(live.id)).id == live.id

        # Past the default grace period (thirty days) the deleted group and file go too. Time
        # is moved by backdating: retention refuses a `now` in the future.
        month_ago = now - timedelta(days=31)
        await backdate(caas_layer, MediaFile, [kept.id], deleted_at=month_ago)
        await backdate(caas_layer, Group, [group.id], deleted_at=month_ago)
        later = await RetentionService(caas_layer).apply(now=now)
        assert (later.files, later.groups) == (1, 1)
        assert await groups.get_or_none(group.id, include_deleted=True) is None
        assert (await files.get(live.id)).id == live.id


@pytest.mark.caas_isolated  # walks every tenant of the directory
async def test_apply_all_runs_each_tenant_with_its_own_settings(
    caas_layer: DataLayer, caas_tenant: TenantFactory
) -> None:
    now = utcnow()
    short, forever = await caas_tenant(Tier.FREE), await caas_tenant(Tier.FREE)
    ids: dict[str, PydanticObjectId] = {}
    for tenant in (short, forever):
        async with tenant_scope(tenant):
            (message,), _ = await chat(caas_layer, [f"from {tenant}"])
            ids[tenant] = message.id
            await backdate(caas_layer, Message, [message.id], created_at=now - timedelta(days=9))
    async with tenant_scope(short):
        await caas_layer.repo(TenantSettingsRepository).update_section(
            "retention", {"message_retention_days": 7}
        )
    reports = {r.tenant_id: r for r in await RetentionService(caas_layer).apply_all(now=now)}
    assert reports[short].messages == 1 and reports[short].ok
    assert reports[forever].messages == 0 and reports[forever].ok
    async with tenant_scope(forever):
        assert (await caas_layer.repo(MessageRepository).get(ids[forever])).text.endswith(forever)


async def test_misuse_is_refused(caas_layer: DataLayer, caas_tenant: TenantFactory) -> None:
    service = RetentionService(caas_layer)
    with pytest.raises(TenantContextMissing):
        await service.apply()
    tenant = await caas_tenant(Tier.FREE)
    async with tenant_scope(tenant):
        with pytest.raises(TenantMismatch):
            await service.apply_all()
        with pytest.raises(DocumentValidationError, match="timezone"):
            await service.apply(now=datetime(2026, 1, 1))
        with pytest.raises(DocumentValidationError, match="in the future"):
            await service.apply(now=utcnow() + timedelta(days=31))
    with pytest.raises(DocumentValidationError, match="in the future"):
        await service.apply_all(now=utcnow() + timedelta(minutes=1))
