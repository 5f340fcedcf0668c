"""Messages: send, gap-free seqs under concurrency, history pages, edit, soft delete, purge."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from beanie import PydanticObjectId

from caas_data import (
    DataLayer,
    DocumentValidationError,
    NotFoundError,
    Tier,
    VersionConflict,
    tenant_scope,
)
from caas_data.documents.base import utcnow
from caas_data.documents.saas.messaging import MAX_EDITS_KEPT, Conversation, Message
from caas_data.repositories.counters import CounterRepository
from caas_data.repositories.saas.messaging import (
    ConversationRepository,
    MessageRepository,
    ReactionRepository,
)
from caas_data.saas import UserRepository
from caas_data.testing import ServerHandle
from caas_data.testing.helpers import connect_for_tests

from .conftest import Tenants

TenantFactory = Callable[..., Awaitable[str]]


async def make_users(layer: DataLayer, count: int) -> list[PydanticObjectId]:
    users = await layer.repo(UserRepository).create_many(
        {"external_id": f"u{i}", "display_name": f"User {i}"} for i in range(count)
    )
    return [u.id for u in users if u.id is not None]


async def make_group(layer: DataLayer, members: list[PydanticObjectId]) -> Conversation:
    return await layer.repo(ConversationRepository).open_group(
        PydanticObjectId(), title="team", participant_ids=members, created_by=members[0]
    )


async def test_send_stores_content_references_and_preview(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant):
        alice, bob = await make_users(caas_layer, 2)
        conv = await caas_layer.repo(ConversationRepository).open_direct(alice, bob)
        messages = caas_layer.repo(MessageRepository)
        file_id = PydanticObjectId()
        first = await messages.send(
            conv.id,
            alice,
            text="Hello Bob",
            attachments=[
                {"file_id": file_id, "name": "a.png", "mime_type": "image/png", "size": 7}
            ],
        )
        reply = await messages.send(conv.id, bob, text="hi!", reply_to_id=first.id)
        threaded = await messages.send(conv.id, alice, text="in thread", thread_root_id=first.id)
        assert [first.seq, reply.seq, threaded.seq] == [1, 2, 3]
        stored = await messages.get(first.id)
        assert stored.attachments[0].file_id == file_id and stored.attachments[0].size == 7
        assert stored.terms == ["hello", "bob"]
        assert (await messages.get(reply.id)).reply_to_id == first.id
        assert [m.id for m in await messages.thread(first.id)] == [threaded.id]
        conv = await caas_layer.repo(ConversationRepository).get(conv.id)
        assert conv.last_seq == 3 and conv.last_message is not None
        assert conv.last_message.seq == 3 and conv.last_message.text == "in thread"
        assert conv.last_message.sender_id == alice
        assert conv.last_message_at == threaded.created_at


async def test_send_rejects_bad_input_before_writing(
    caas_layer: DataLayer, caas_tenant: TenantFactory
) -> None:
    async with tenant_scope(await caas_tenant(Tier.FREE)):
        alice, bob, carol = await make_users(caas_layer, 3)
        conversations = caas_layer.repo(ConversationRepository)
        conv = await conversations.open_direct(alice, bob)
        other = await conversations.open_direct(alice, carol)
        messages = caas_layer.repo(MessageRepository)
        elsewhere = await messages.send(other.id, alice, text="other")
        with pytest.raises(DocumentValidationError) as empty:
            await messages.send(conv.id, alice)
        assert "text or at least one attachment" in str(empty.value)
        with pytest.raises(DocumentValidationError) as bad_file:
            await messages.send(
                conv.id, alice, attachments=[{"file_id": "nope", "name": "x", "mime_type": "a/b"}]
            )
        assert any(f.startswith("attachments") for f in bad_file.value.fields)
        with pytest.raises(DocumentValidationError, match="another conversation"):
            await messages.send(conv.id, alice, text="re", reply_to_id=elsewhere.id)
        with pytest.raises(NotFoundError):
            await messages.send(conv.id, alice, text="re", reply_to_id=PydanticObjectId())
        with pytest.raises(NotFoundError):
            await messages.send(PydanticObjectId(), alice, text="lost")
        with pytest.raises(DocumentValidationError, match="not a participant"):
            await messages.send(conv.id, carol, text="intruder")
        assert await messages.count({"conversation_id": conv.id}) == 0
        assert (await conversations.get(conv.id)).last_seq == 0


async def test_fifty_concurrent_senders_get_gap_free_unique_seqs(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant):
        users = await make_users(caas_layer, 50)
        conv = await make_group(caas_layer, users)
        messages = caas_layer.repo(MessageRepository)
        sent = await asyncio.gather(
            *(messages.send(conv.id, user, text=f"msg {i}") for i, user in enumerate(users))
        )
        assert sorted(m.seq for m in sent) == list(range(1, 51))
        stored = await messages.history(conv.id, limit=100)
        assert [m.seq for m in stored] == list(range(1, 51))
        assert {m.id for m in stored} == {m.id for m in sent}
        conv = await caas_layer.repo(ConversationRepository).get(conv.id)
        last = max(sent, key=lambda m: m.seq)
        assert conv.last_seq == 50 and conv.last_message is not None
        assert conv.last_message.message_id == last.id  # the preview is the newest message
        counters = caas_layer.repo(CounterRepository)
        assert await counters.current(MessageRepository.counter_key(conv.id)) == 50


async def test_senders_on_separate_clients_get_gap_free_seqs_without_transactions(
    caas_layer: DataLayer, caas_tenant: TenantFactory, caas_server: ServerHandle
) -> None:
    """Two layers stand for two app processes: nothing local between them. A send takes its
    number in one atomic statement and runs no transaction (nothing stays locked across
    round trips), yet the seqs are 1..N with each sender's order kept."""
    tenant = await caas_tenant(Tier.PRO)
    other = await connect_for_tests(caas_server.uri, database_prefix=caas_layer.prefix)
    try:
        async with caas_layer.tenant_scope(tenant):
            users = await make_users(caas_layer, 4)
            conv = await make_group(caas_layer, users)

        async def sender(layer: DataLayer, user: PydanticObjectId, count: int) -> list[int]:
            async with layer.tenant_scope(tenant):
                messages = layer.repo(MessageRepository)
                return [(await messages.send(conv.id, user, text="x")).seq for _ in range(count)]

        attempts = 0
        for layer in (caas_layer, other):
            unit_of_work = layer.unit_of_work

            def counted(*args: Any, _open: Any = unit_of_work, **kwargs: Any) -> Any:
                nonlocal attempts
                attempts += 1  # one transaction attempt (the policy opens one per attempt)
                return _open(*args, **kwargs)

            layer.unit_of_work = counted  # type: ignore[method-assign]
        results = await asyncio.gather(
            *(
                sender(layer, user, 6)
                for layer, user in zip([caas_layer, other] * 2, users, strict=True)
            )
        )
        seqs = [seq for result in results for seq in result]
        assert sorted(seqs) == list(range(1, 25))
        assert all(result == sorted(result) for result in results)  # each sender's order kept
        assert attempts == 0  # the send path holds no transaction
    finally:
        await other.close()


async def test_an_aborted_send_gives_its_number_back(caas_layer: DataLayer, tenant: str) -> None:
    async with tenant_scope(tenant):
        alice, bob, carol = await make_users(caas_layer, 3)
        conv = await caas_layer.repo(ConversationRepository).open_direct(alice, bob)
        messages = caas_layer.repo(MessageRepository)
        counters = caas_layer.repo(CounterRepository)
        key = MessageRepository.counter_key(conv.id)
        assert (await messages.send(conv.id, alice, text="one")).seq == 1
        # Fails inside the transaction, after the number was allocated.
        with pytest.raises(DocumentValidationError, match="not a participant"):
            await messages.send(conv.id, carol, text="not allowed")
        assert await counters.current(key) == 1
        # The caller's own transaction aborts after a successful send.
        with pytest.raises(RuntimeError, match="abort"):
            async with caas_layer.unit_of_work():
                assert (await messages.send(conv.id, bob, text="rolled back")).seq == 2
                raise RuntimeError("abort")
        assert await counters.current(key) == 1
        assert await messages.count({"conversation_id": conv.id}) == 1
        assert (await messages.send(conv.id, bob, text="two")).seq == 2
        assert [m.seq for m in await messages.history(conv.id)] == [1, 2]


async def test_a_retried_send_returns_the_first_message(
    caas_layer: DataLayer, caas_tenant: TenantFactory
) -> None:
    async with tenant_scope(await caas_tenant(Tier.PRO)):
        alice, bob = await make_users(caas_layer, 2)
        conv = await caas_layer.repo(ConversationRepository).open_direct(alice, bob)
        messages = caas_layer.repo(MessageRepository)
        sends = await asyncio.gather(
            *(messages.send(conv.id, alice, text="once", client_message_id="c-1") for _ in range(5))
        )
        assert {m.id for m in sends} == {sends[0].id} and sends[0].seq == 1
        assert (await messages.send(conv.id, alice, text="next")).seq == 2  # no gap
        assert await messages.count({"conversation_id": conv.id}) == 2


async def test_history_pages_back_with_a_cursor_and_forward_from_a_seq(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant):
        alice, bob = await make_users(caas_layer, 2)
        conv = await caas_layer.repo(ConversationRepository).open_direct(alice, bob)
        messages = caas_layer.repo(MessageRepository)
        for i in range(12):
            await messages.send(conv.id, alice if i % 2 else bob, text=f"m{i + 1}")
        newest = await messages.history(conv.id, limit=5)
        assert [m.seq for m in newest] == [8, 9, 10, 11, 12] and newest.has_more
        older = await messages.history(conv.id, after=newest.next_cursor, limit=5)
        assert [m.seq for m in older] == [3, 4, 5, 6, 7] and older.has_more
        oldest = await messages.history(conv.id, after=older.next_cursor, limit=5)
        assert [m.seq for m in oldest] == [1, 2] and not oldest.has_more
        assert oldest.next_cursor is None
        newer = await messages.history(conv.id, newer_than=2, limit=4)
        assert [m.seq for m in newer] == [3, 4, 5, 6] and newer.has_more
        rest = await messages.history(conv.id, newer_than=2, after=newer.next_cursor, limit=4)
        assert [m.seq for m in rest] == [7, 8, 9, 10] and rest.has_more
        tail = await messages.history(conv.id, newer_than=10, limit=4)
        assert [m.seq for m in tail] == [11, 12] and not tail.has_more
        assert [m.text for m in tail] == ["m11", "m12"]
        with pytest.raises(DocumentValidationError):
            await messages.history(conv.id, limit=0)
        with pytest.raises(DocumentValidationError) as not_a_seq:
            await messages.history(conv.id, newer_than="3")  # type: ignore[arg-type]
        assert not_a_seq.value.fields == ("newer_than",)


async def test_a_cursor_of_another_query_is_refused(caas_layer: DataLayer, tenant: str) -> None:
    """A cursor is for the query that made it: reused elsewhere it is refused, never `[]`."""
    async with tenant_scope(tenant):
        alice, bob, carol = await make_users(caas_layer, 3)
        conversations = caas_layer.repo(ConversationRepository)
        conv = await conversations.open_direct(alice, bob)
        other = await conversations.open_direct(alice, carol)
        messages = caas_layer.repo(MessageRepository)
        for i in range(4):
            await messages.send(conv.id, alice, text=f"m{i}")
        back = await messages.history(conv.id, limit=2)
        forward = await messages.history(conv.id, newer_than=0, limit=2)
        found = await messages.find({"conversation_id": conv.id}, sort="seq", limit=2)
        refusals = [
            messages.history(conv.id, newer_than=0, after=back.next_cursor),  # other direction
            messages.history(other.id, after=back.next_cursor),  # other conversation
            messages.history(conv.id, after=forward.next_cursor),
            messages.history(conv.id, after=found.next_cursor),  # a find() cursor
            messages.find({"conversation_id": conv.id}, sort="-seq", after=found.next_cursor),
            messages.find({"conversation_id": other.id}, sort="seq", after=found.next_cursor),
            messages.find({"conversation_id": conv.id}, sort="seq", after="not-a-cursor"),
        ]
        for call in refusals:
            with pytest.raises(DocumentValidationError, match="cursor") as refused:
                await call
            assert refused.value.fields == ("after",)
        users = caas_layer.repo(UserRepository)
        with pytest.raises(DocumentValidationError, match="another query"):
            await users.find(after=found.next_cursor)  # another collection


async def test_the_history_of_a_missing_conversation_is_not_found(
    caas_layer: DataLayer, tenant: str
) -> None:
    nowhere = PydanticObjectId()
    async with tenant_scope(tenant):
        messages = caas_layer.repo(MessageRepository)
        with pytest.raises(NotFoundError, match=str(nowhere)):
            await messages.history(nowhere)
        with pytest.raises(NotFoundError, match=str(nowhere)):
            await messages.thread(nowhere)
        alice, bob = await make_users(caas_layer, 2)
        quiet = await caas_layer.repo(ConversationRepository).open_direct(alice, bob)
        page = await messages.history(quiet.id)  # exists, no message yet: an empty page
        assert page.items == [] and not page.has_more


def _stages(plan: dict) -> list[dict]:
    """Every stage of a winning plan, top down."""
    found, stage = [], plan
    while stage:
        found.append(stage)
        stage = stage.get("inputStage") or (stage.get("inputStages") or [None])[0]
    return found


@pytest.mark.parametrize("page", [{}, {"newer_than": 3}])
async def test_history_is_served_by_the_seq_index(
    caas_layer: DataLayer, tenant: str, page: dict
) -> None:
    """The winning plan scans `tenant_conversation_seq_unique`.

    The embedded server (hello `setName == "secantus"`) puts a SORT stage on top of the IXSCAN
    even when the index gives the order; real MongoDB does not, so "no in-memory sort" is
    asserted only on real MongoDB.
    """
    async with tenant_scope(tenant):
        alice, bob = await make_users(caas_layer, 2)
        conv = await caas_layer.repo(ConversationRepository).open_direct(alice, bob)
        messages = caas_layer.repo(MessageRepository)
        for i in range(8):
            await messages.send(conv.id, alice, text=f"m{i}")
        plan = await messages.explain_history(conv.id, limit=3, **page)
        stages = _stages(plan["queryPlanner"]["winningPlan"])
        scans = [s for s in stages if s["stage"] == "IXSCAN"]
        assert [s["indexName"] for s in scans] == ["tenant_conversation_seq_unique"]
        hello = await caas_layer.client.admin.command("hello")
        if hello.get("setName") != "secantus":
            assert all(s["stage"] != "SORT" for s in stages)


async def test_history_pages_are_index_only(caas_layer: DataLayer, tenant: str) -> None:
    """No collection scan, and only this conversation's keys below `before` are examined.

    The embedded server does not push the page's limit into its backward IXSCAN (its plan is
    SORT > FETCH > IXSCAN and it examines every key of the range); real MongoDB examines
    limit + 1 keys. Either way the work grows with the range asked for, never with the
    collection: other conversations and other tenants are not touched.
    """
    async with tenant_scope(tenant):
        alice, bob, carol = await make_users(caas_layer, 3)
        conversations = caas_layer.repo(ConversationRepository)
        conv = await conversations.open_direct(alice, bob)
        other = await conversations.open_direct(alice, carol)
        messages = caas_layer.repo(MessageRepository)
        for i in range(12):
            await messages.send(conv.id, alice, text=f"m{i}")
            await messages.send(other.id, alice, text=f"o{i}")
        back = await messages.history(conv.id, limit=4)  # 9..12; its cursor pages below 9
        assert [m.seq for m in back] == [9, 10, 11, 12]
        plan = await messages.explain_history(conv.id, after=back.next_cursor, limit=3)
    stages = [s["stage"] for s in _stages(plan["queryPlanner"]["winningPlan"])]
    assert "IXSCAN" in stages and "COLLSCAN" not in stages
    stats = plan.get("executionStats")
    assert stats is not None, "the server reports no executionStats"
    assert stats["totalDocsExamined"] <= stats["totalKeysExamined"] <= 8  # seqs 1..8 at most
    hello = await caas_layer.client.admin.command("hello")
    if hello.get("setName") != "secantus":
        assert stats["totalKeysExamined"] <= 4


async def test_edit_is_versioned_and_keeps_a_bounded_history(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant):
        alice, bob = await make_users(caas_layer, 2)
        conv = await caas_layer.repo(ConversationRepository).open_direct(alice, bob)
        messages = caas_layer.repo(MessageRepository)
        sent = await messages.send(conv.id, alice, text="helo wrld")
        edited = await messages.edit(sent, "hello world", actor=alice)
        assert edited.version == sent.version + 1 and edited.edit_count == 1
        stored = await messages.get(sent.id)
        assert stored.text == "hello world" and stored.terms == ["hello", "world"]
        assert [e.text for e in stored.edits] == ["helo wrld"]
        assert stored.version == edited.version and stored.edited_at == edited.edited_at
        conv_after = await caas_layer.repo(ConversationRepository).get(conv.id)
        assert conv_after.last_message is not None
        assert conv_after.last_message.text == "hello world"  # the preview follows the edit
        with pytest.raises(VersionConflict):
            await messages.edit(sent, "stale", actor=alice)
        with pytest.raises(DocumentValidationError, match="only the sender"):
            await messages.edit(stored, "not mine", actor=bob)
        current = stored
        for i in range(MAX_EDITS_KEPT + 3):
            current = await messages.edit(current, f"v{i}", actor=alice)
        stored = await messages.get(sent.id)
        assert stored.edit_count == MAX_EDITS_KEPT + 4
        assert len(stored.edits) == MAX_EDITS_KEPT
        assert stored.edits[-1].text == f"v{MAX_EDITS_KEPT + 1}"  # newest previous text kept
        assert stored == current


async def test_concurrent_edits_of_one_version_one_wins(
    caas_layer: DataLayer, caas_tenant: TenantFactory
) -> None:
    async with tenant_scope(await caas_tenant(Tier.ENTERPRISE)):
        alice, bob = await make_users(caas_layer, 2)
        conv = await caas_layer.repo(ConversationRepository).open_direct(alice, bob)
        messages = caas_layer.repo(MessageRepository)
        sent = await messages.send(conv.id, alice, text="v0")
        results = await asyncio.gather(
            *(messages.edit(sent, f"v{i}", actor=alice) for i in range(1, 6)),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, Message)]
        assert len(winners) == 1
        assert all(isinstance(r, VersionConflict) for r in results if r not in winners)
        stored = await messages.get(sent.id)
        assert stored.text == winners[0].text and stored.edit_count == 1


async def test_deleted_messages_read_as_tombstones_and_only_the_sender_restores(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant):
        alice, bob = await make_users(caas_layer, 2)
        conversations = caas_layer.repo(ConversationRepository)
        conv = await conversations.open_direct(alice, bob)
        messages = caas_layer.repo(MessageRepository)
        await messages.send(conv.id, bob, text="first")
        sent = await messages.send(conv.id, alice, text="oops secret")
        deleted = await messages.soft_delete(sent.id, actor=alice)
        assert deleted.is_deleted and deleted.deleted_by == alice
        for_bob = await messages.history(conv.id, viewer_id=bob)
        assert [m.seq for m in for_bob] == [1, 2]  # the seq stays, as a tombstone
        tomb = for_bob.items[1]
        assert tomb.is_deleted and tomb.text is None and tomb.attachments == []
        assert tomb.sender_id == alice
        assert (await messages.view(sent.id, viewer_id=alice)).text == "oops secret"
        assert (await messages.view(sent.id, viewer_id=None)).text is None
        preview = (await conversations.get(conv.id)).last_message
        assert preview is not None and preview.deleted and preview.text is None
        assert await messages.get_or_none(sent.id) is None  # plain reads skip deleted ones
        with pytest.raises(DocumentValidationError, match="only the sender"):
            await messages.restore(sent.id, actor=bob)
        with pytest.raises(DocumentValidationError, match="actor="):
            await messages.restore(sent.id)
        assert (await messages.get(sent.id, include_deleted=True)).is_deleted
        restored = await messages.restore(sent.id, actor=alice)
        assert not restored.is_deleted and restored.text == "oops secret"
        preview = (await conversations.get(conv.id)).last_message
        assert preview is not None and not preview.deleted and preview.text == "oops secret"
        with pytest.raises(NotFoundError):
            await messages.restore(PydanticObjectId(), actor=alice)


async def test_purge_older_than_deletes_old_messages_in_batches(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant):
        alice, bob = await make_users(caas_layer, 2)
        conv = await caas_layer.repo(ConversationRepository).open_direct(alice, bob)
        messages = caas_layer.repo(MessageRepository)
        old = [await messages.send(conv.id, alice, text=f"old {i}") for i in range(7)]
        await messages.soft_delete(old[0].id)  # deleted ones go too
        await caas_layer.repo(ReactionRepository).toggle(old[1].id, bob, "👍")
        await asyncio.sleep(0.01)
        cutoff = utcnow()
        await asyncio.sleep(0.01)
        kept = await messages.send(conv.id, bob, text="new")
        # `limit` bounds the total, across batches, oldest first: 2 of 3 + 2 of 3 + 1.
        assert await messages.purge_older_than(cutoff, limit=5, batch_size=2) == 5
        left = await messages.find(include_deleted=True, sort=[("seq", 1)])
        assert [m.text for m in left] == ["old 5", "old 6", "new"]
        with pytest.raises(DocumentValidationError) as bad_limit:
            await messages.purge_older_than(cutoff, limit=0)
        assert bad_limit.value.fields == ("limit",)
        assert await messages.purge_older_than(cutoff, batch_size=3) == 2  # the rest
        assert await messages.count(include_deleted=True) == 1
        assert (await messages.get(kept.id)).text == "new"
        assert await caas_layer.repo(ReactionRepository).count() == 0
        assert await messages.purge_older_than(cutoff, batch_size=3) == 0
        with pytest.raises(DocumentValidationError):
            await messages.purge_older_than(cutoff.replace(tzinfo=None), batch_size=3)
        with pytest.raises(DocumentValidationError) as bad_batch:
            await messages.purge_older_than(cutoff, batch_size=0)
        assert bad_batch.value.fields == ("batch_size",)
        with pytest.raises(DocumentValidationError, match="in the future"):
            await messages.purge_older_than(utcnow() + timedelta(days=1), batch_size=5)
        assert (await messages.get(kept.id)).text == "new"  # the refusal deleted nothing
        assert await messages.purge_older_than(utcnow(), batch_size=5) == 1


async def test_messages_stay_within_their_tenant(
    caas_layer: DataLayer, tenants: Tenants, caas_tenant: TenantFactory
) -> None:
    async with tenant_scope(tenants.shared):
        alice, bob = await make_users(caas_layer, 2)
        conv = await caas_layer.repo(ConversationRepository).open_direct(alice, bob)
        sent = await caas_layer.repo(MessageRepository).send(conv.id, alice, text="private")
    async with tenant_scope(tenants.pro):
        messages = caas_layer.repo(MessageRepository)
        assert await messages.get_or_none(sent.id, include_deleted=True) is None
        with pytest.raises(NotFoundError, match=str(conv.id)):  # no such conversation here
            await messages.history(conv.id)
    async with tenant_scope(await caas_tenant(Tier.FREE)):
        messages = caas_layer.repo(MessageRepository)
        assert await messages.get_or_none(sent.id, include_deleted=True) is None
        with pytest.raises(NotFoundError):
            await messages.send(conv.id, alice, text="cross-tenant")
