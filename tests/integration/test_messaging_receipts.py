"""Read receipts: monotonic per-(conversation, user) watermarks and unread counts."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest
from beanie import PydanticObjectId

from caas_data import DataLayer, DocumentValidationError, NotFoundError, Tier, tenant_scope
from caas_data.repositories.saas.messaging import (
    ConversationRepository,
    MessageRepository,
    ReadReceiptRepository,
)
from caas_data.saas import UserRepository

TenantFactory = Callable[..., Awaitable[str]]


async def make_users(layer: DataLayer, count: int) -> list[PydanticObjectId]:
    users = await layer.repo(UserRepository).create_many(
        {"external_id": f"u{i}", "display_name": f"User {i}"} for i in range(count)
    )
    return [u.id for u in users if u.id is not None]


async def test_receipts_never_move_the_watermark_back(caas_layer: DataLayer, tenant: str) -> None:
    async with tenant_scope(tenant):
        alice, bob = await make_users(caas_layer, 2)
        conv = await caas_layer.repo(ConversationRepository).open_direct(alice, bob)
        messages = caas_layer.repo(MessageRepository)
        for i in range(6):
            await messages.send(conv.id, alice, text=f"m{i}")
        receipts = caas_layer.repo(ReadReceiptRepository)
        assert await receipts.watermark(conv.id, bob) == 0
        assert (await receipts.mark_read(conv.id, bob, 4)).last_read_seq == 4
        assert (await receipts.mark_read(conv.id, bob, 2)).last_read_seq == 4  # older: ignored
        assert (await receipts.mark_read(conv.id, bob, 99)).last_read_seq == 6  # clamped
        assert await receipts.watermark(conv.id, bob) == 6
        assert await receipts.watermark(conv.id, alice) == 6  # a sender has read their own
        assert sorted(await receipts.readers(conv.id, 6), key=str) == sorted([alice, bob], key=str)
        assert await receipts.count({"conversation_id": conv.id}) == 2  # one per user


async def test_out_of_order_concurrent_receipts_end_at_the_highest(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant):
        alice, bob = await make_users(caas_layer, 2)
        conversations = caas_layer.repo(ConversationRepository)
        conv = await conversations.open_direct(alice, bob)
        messages = caas_layer.repo(MessageRepository)
        for i in range(12):
            await messages.send(conv.id, alice, text=f"m{i}")
        receipts = caas_layer.repo(ReadReceiptRepository)
        seqs = list(range(1, 13)) * 2  # each receipt twice (two devices), in random order
        random.shuffle(seqs)
        stored = await asyncio.gather(*(receipts.mark_read(conv.id, bob, s) for s in seqs))
        assert all(r.last_read_seq >= s for r, s in zip(stored, seqs, strict=True))
        assert await receipts.watermark(conv.id, bob) == 12
        assert await receipts.count({"user_id": bob}) == 1
        assert await conversations.count_unread(conv.id, bob) == 0
        await messages.send(conv.id, alice, text="one more")
        assert await conversations.count_unread(conv.id, bob) == 1


async def test_count_unread_reads_no_message(
    caas_layer: DataLayer, caas_tenant: TenantFactory
) -> None:
    """Unread = last_seq - watermark: with the messages gone, the count is unchanged."""
    async with tenant_scope(await caas_tenant(Tier.ENTERPRISE)):
        alice, bob = await make_users(caas_layer, 2)
        conversations = caas_layer.repo(ConversationRepository)
        conv = await conversations.open_direct(alice, bob)
        messages = caas_layer.repo(MessageRepository)
        for i in range(5):
            await messages.send(conv.id, alice, text=f"m{i}")
        await caas_layer.repo(ReadReceiptRepository).mark_read(conv.id, bob, 2)
        await messages.collection(include_deleted=True).delete_many({})
        assert await conversations.count_unread(conv.id, bob) == 3


async def test_bad_receipts_are_refused(caas_layer: DataLayer, caas_tenant: TenantFactory) -> None:
    async with tenant_scope(await caas_tenant(Tier.PRO)):
        alice, bob, carol = await make_users(caas_layer, 3)
        conv = await caas_layer.repo(ConversationRepository).open_direct(alice, bob)
        receipts = caas_layer.repo(ReadReceiptRepository)
        with pytest.raises(DocumentValidationError) as negative:
            await receipts.mark_read(conv.id, bob, -1)
        assert negative.value.fields == ("seq",)
        for not_a_seq in ("3", None, 2.5):
            with pytest.raises(DocumentValidationError):
                await receipts.mark_read(conv.id, bob, not_a_seq)  # type: ignore[arg-type]
        with pytest.raises(DocumentValidationError, match="not a participant"):
            await receipts.mark_read(conv.id, carol, 1)
        with pytest.raises(NotFoundError):
            await receipts.mark_read(PydanticObjectId(), bob, 1)
        assert await receipts.count() == 0
