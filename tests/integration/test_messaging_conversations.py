"""Conversations: one direct conversation per pair, groups, and a user's conversation list."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from beanie import PydanticObjectId

from caas_data import (
    DataLayer,
    DocumentValidationError,
    DuplicateError,
    NotFoundError,
    Tier,
    tenant_scope,
)
from caas_data.documents.saas.messaging import Conversation, ConversationKind, direct_key
from caas_data.repositories.saas import conversations as conversation_repositories
from caas_data.repositories.saas.messaging import (
    ConversationRepository,
    MessageRepository,
    ReadReceiptRepository,
)
from caas_data.saas import UserRepository

from .conftest import raw_collection

TenantFactory = Callable[..., Awaitable[str]]


async def make_users(layer: DataLayer, count: int) -> list[PydanticObjectId]:
    users = await layer.repo(UserRepository).create_many(
        {"external_id": f"u{i}", "display_name": f"User {i}"} for i in range(count)
    )
    return [u.id for u in users if u.id is not None]


async def test_twenty_concurrent_openers_get_one_direct_conversation(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant):
        alice, bob = await make_users(caas_layer, 2)
        conversations = caas_layer.repo(ConversationRepository)
        opened = await asyncio.gather(
            *(
                conversations.open_direct(*((alice, bob) if i % 2 else (bob, alice)))
                for i in range(20)
            )
        )
        assert len({c.id for c in opened}) == 1
        conv = opened[0]
        assert conv.kind is ConversationKind.DIRECT
        assert conv.direct_key == direct_key(alice, bob) == direct_key(bob, alice)
        assert set(conv.participant_ids) == {alice, bob}
        assert await conversations.count() == 1
    tier = (await caas_layer.tenants.get(tenant)).tier
    stored = raw_collection(caas_layer, tenant, tier, "conversations")
    assert await stored.count_documents({"tenant_id": tenant}) == 1


async def test_direct_conversation_rules(caas_layer: DataLayer, caas_tenant: TenantFactory) -> None:
    async with tenant_scope(await caas_tenant(Tier.FREE)):
        alice, bob = await make_users(caas_layer, 2)
        conversations = caas_layer.repo(ConversationRepository)
        with pytest.raises(DocumentValidationError, match="two different users"):
            await conversations.open_direct(alice, alice)
        with pytest.raises(DocumentValidationError) as bad:
            await conversations.open_direct(alice, "not-an-id")  # type: ignore[arg-type]
        assert bad.value.fields == ("user_b",)
        with pytest.raises(NotFoundError, match="users not found"):
            await conversations.open_direct(alice, PydanticObjectId())
        conv = await conversations.open_direct(alice, bob)
        with pytest.raises(DocumentValidationError, match="members are fixed"):
            await conversations.add_participants(conv.id, [alice])
        with pytest.raises(DuplicateError):  # the unique key holds for any write path
            await conversations.create(
                Conversation(
                    kind=ConversationKind.DIRECT,
                    participant_ids=[bob, alice],
                    direct_key=direct_key(alice, bob),
                )
            )
    async with tenant_scope(await caas_tenant(Tier.PRO)):  # another tenant, its own pairs
        assert await caas_layer.repo(ConversationRepository).count() == 0


async def test_group_conversation_is_one_per_group_with_membership(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant):
        alice, bob, carol, dave = await make_users(caas_layer, 4)
        conversations = caas_layer.repo(ConversationRepository)
        group_id = PydanticObjectId()
        opened = await asyncio.gather(
            *(
                conversations.open_group(group_id, title="Team", participant_ids=[alice, bob])
                for _ in range(5)
            )
        )
        assert len({c.id for c in opened}) == 1
        conv = opened[0]
        assert (conv.kind, conv.group_id, conv.title) == (ConversationKind.GROUP, group_id, "Team")
        grown = await conversations.add_participants(conv.id, [carol, dave, alice])
        assert grown.participant_ids == [alice, bob, carol, dave]
        shrunk = await conversations.remove_participants(conv.id, [bob])
        assert shrunk.participant_ids == [alice, carol, dave]
        with pytest.raises(DocumentValidationError, match="not a participant"):
            await conversations.require_participant(conv.id, bob)
        with pytest.raises(DocumentValidationError, match="no participant left"):
            await conversations.remove_participants(conv.id, [alice, carol, dave])
        assert (await conversations.get(conv.id)).participant_ids == [alice, carol, dave]
        with pytest.raises(NotFoundError):
            await conversations.add_participants(conv.id, [PydanticObjectId()])
        with pytest.raises(NotFoundError):
            await conversations.remove_participants(PydanticObjectId(), [alice])
        with pytest.raises(DocumentValidationError) as bad:
            await conversations.open_group(
                PydanticObjectId(), title="", participant_ids=[alice, alice]
            )
        assert set(bad.value.fields) >= {"title", "participant_ids"}


async def test_inbox_sorted_by_activity_with_previews_and_unread_counts(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant):
        me, bob, carol, dave = await make_users(caas_layer, 4)
        conversations = caas_layer.repo(ConversationRepository)
        messages = caas_layer.repo(MessageRepository)
        with_bob = await conversations.open_direct(me, bob)
        with_carol = await conversations.open_direct(me, carol)
        group = await conversations.open_group(
            PydanticObjectId(), title="All", participant_ids=[me, bob, carol, dave]
        )
        not_mine = await conversations.open_direct(bob, dave)
        await messages.send(with_bob.id, bob, text="b1")
        await messages.send(group.id, dave, text="g1")
        await messages.send(with_carol.id, carol, text="c1")
        await messages.send(with_bob.id, bob, text="b2")
        await messages.send(with_bob.id, me, text="b3 from me")  # my own message is read
        await messages.send(group.id, carol, text="g2 " + "long " * 50)
        await messages.send(not_mine.id, bob, text="private")
        await caas_layer.repo(ReadReceiptRepository).mark_read(group.id, me, 1)

        first = await conversations.inbox(me, limit=2)
        second = await conversations.inbox(me, limit=2, after=first.next_cursor)
        assert second.next_cursor is None
        listed = [*first, *second]
        assert [s.conversation.id for s in listed] == [group.id, with_bob.id, with_carol.id]
        assert [s.unread_count for s in listed] == [1, 0, 1]
        preview = listed[0].conversation.last_message
        assert preview is not None and preview.seq == 2 and preview.sender_id == carol
        assert preview.text is not None and len(preview.text) == 140 and preview.text[-1] == "…"
        assert listed[1].conversation.last_message.text == "b3 from me"  # type: ignore[union-attr]
        assert await conversations.count_unread(with_carol.id, me) == 1
        assert await conversations.count_unread(with_carol.id, carol) == 0
        assert [s.conversation.id for s in await conversations.inbox(dave)] == [
            not_mine.id,
            group.id,
        ]
        empty = await conversations.open_direct(carol, dave)  # no message yet: listed by creation
        assert (await conversations.inbox(dave)).items[0].conversation.id == empty.id


async def test_group_size_is_bounded(
    caas_layer: DataLayer, caas_tenant: TenantFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conversation_repositories, "MAX_PARTICIPANTS", 3)
    async with tenant_scope(await caas_tenant(Tier.PRO)):
        alice, bob, carol, dave = await make_users(caas_layer, 4)
        conversations = caas_layer.repo(ConversationRepository)
        conv = await conversations.open_group(
            PydanticObjectId(), title="small", participant_ids=[alice, bob]
        )
        grown = await conversations.add_participants(conv.id, [carol, bob])  # bob counted once
        assert len(grown.participant_ids) == 3
        with pytest.raises(DocumentValidationError, match="more than 3 participants"):
            await conversations.add_participants(conv.id, [dave])
        assert (await conversations.get(conv.id)).participant_ids == [alice, bob, carol]
