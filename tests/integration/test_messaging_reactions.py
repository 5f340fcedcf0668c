"""Reactions: one per (message, user, emoji), toggled, summarised per message."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from beanie import PydanticObjectId

from caas_data import DataLayer, DocumentValidationError, NotFoundError, Tier, tenant_scope
from caas_data.repositories.saas.messaging import (
    ConversationRepository,
    MessageRepository,
    ReactionCount,
    ReactionRepository,
)
from caas_data.saas import UserRepository

TenantFactory = Callable[..., Awaitable[str]]


async def make_users(layer: DataLayer, count: int) -> list[PydanticObjectId]:
    users = await layer.repo(UserRepository).create_many(
        {"external_id": f"u{i}", "display_name": f"User {i}"} for i in range(count)
    )
    return [u.id for u in users if u.id is not None]


async def test_toggle_adds_then_removes_and_summary_counts(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant):
        alice, bob, carol = await make_users(caas_layer, 3)
        conv = await caas_layer.repo(ConversationRepository).open_group(
            PydanticObjectId(), title="g", participant_ids=[alice, bob, carol]
        )
        messages = caas_layer.repo(MessageRepository)
        first = await messages.send(conv.id, alice, text="vote")
        second = await messages.send(conv.id, bob, text="other")
        reactions = caas_layer.repo(ReactionRepository)
        assert await reactions.toggle(first.id, alice, "👍") is True
        assert await reactions.toggle(first.id, bob, "👍") is True
        assert await reactions.toggle(first.id, carol, "🎉") is True
        assert await reactions.toggle(first.id, carol, "🎉") is False  # toggled off
        assert await reactions.toggle(first.id, carol, "❤️") is True
        assert await reactions.toggle(second.id, alice, "👍") is True
        assert await reactions.summary(first.id, viewer_id=bob) == [
            ReactionCount("👍", 2, True),
            ReactionCount("❤️", 1, False),
        ]
        by_message = await reactions.summaries([first.id, second.id], viewer_id=alice)
        assert by_message[first.id][0] == ReactionCount("👍", 2, True)
        assert by_message[second.id] == [ReactionCount("👍", 1, True)]
        assert await reactions.summary(PydanticObjectId()) == []


async def test_concurrent_toggles_leave_one_consistent_state(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant):
        alice, bob = await make_users(caas_layer, 2)
        conv = await caas_layer.repo(ConversationRepository).open_direct(alice, bob)
        message = await caas_layer.repo(MessageRepository).send(conv.id, alice, text="hi")
        reactions = caas_layer.repo(ReactionRepository)
        for starting_present in (False, True):
            results = await asyncio.gather(
                reactions.toggle(message.id, bob, "🔥"), reactions.toggle(message.id, bob, "🔥")
            )
            stored = await reactions.count({"message_id": message.id, "user_id": bob})
            assert stored in (0, 1)  # never a duplicate
            assert results[-1] is (stored == 1) or results[0] is (stored == 1)
            summary = await reactions.summary(message.id, viewer_id=bob)
            assert summary == ([ReactionCount("🔥", 1, True)] if stored else [])
            if (stored == 1) is starting_present:  # bring it to the next starting state
                await reactions.toggle(message.id, bob, "🔥")


async def test_reactions_refuse_bad_input(
    caas_layer: DataLayer, caas_tenant: TenantFactory
) -> None:
    async with tenant_scope(await caas_tenant(Tier.FREE)):
        alice, bob, carol = await make_users(caas_layer, 3)
        conv = await caas_layer.repo(ConversationRepository).open_direct(alice, bob)
        messages = caas_layer.repo(MessageRepository)
        message = await messages.send(conv.id, alice, text="hi")
        reactions = caas_layer.repo(ReactionRepository)
        with pytest.raises(DocumentValidationError) as blank:
            await reactions.toggle(message.id, bob, "")
        assert blank.value.fields == ("emoji",)
        with pytest.raises(DocumentValidationError):
            await reactions.toggle(message.id, bob, "a b")
        with pytest.raises(DocumentValidationError, match="not a participant"):
            await reactions.toggle(message.id, carol, "👍")
        with pytest.raises(NotFoundError):
            await reactions.toggle(PydanticObjectId(), bob, "👍")
        await messages.soft_delete(message.id, actor=alice)
        with pytest.raises(NotFoundError):
            await reactions.toggle(message.id, bob, "👍")
        assert await reactions.count() == 0
