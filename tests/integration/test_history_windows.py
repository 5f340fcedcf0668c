"""History pages read in bounded seq windows give exactly the unbounded query's pages.

Gaps in the seqs (purged messages), pages wider than what is left, and messages stored with a
seq the counter never handed out (written around the layer) must not change a page.
"""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from caas_data import DataLayer, tenant_scope
from caas_data.saas import ConversationRepository, MessageRepository, UserRepository


async def _conversation(layer: DataLayer) -> tuple[Any, Any, MessageRepository]:
    users = await layer.repo(UserRepository).create_many(
        {"external_id": f"w{i}", "display_name": f"W {i}"} for i in range(2)
    )
    conv = await layer.repo(ConversationRepository).open_direct(users[0].id, users[1].id)
    return conv, users[0].id, layer.repo(MessageRepository)


def _expected(seqs: list[int], before: int | None, after: int | None, limit: int) -> list[int]:
    if after is not None:
        return sorted(s for s in seqs if s > after)[:limit]
    below = sorted((s for s in seqs if before is None or s < before), reverse=True)[:limit]
    return sorted(below)


@pytest.mark.parametrize("limit", [1, 3, 10, 40])
async def test_windowed_pages_equal_the_unbounded_query(
    caas_layer: DataLayer, tenant: str, limit: int
) -> None:
    async with tenant_scope(tenant):
        conv, alice, messages = await _conversation(caas_layer)
        sent = [await messages.send(conv.id, alice, text=f"m{i}") for i in range(30)]
        # Gaps: a run of purged seqs in the middle, the first two and a few scattered.
        for message in sent[0:2] + sent[9:21] + sent[24:25] + sent[27:28]:
            await messages.purge(message.id)
        seqs = [m.seq for m in sent[2:9] + sent[21:24] + sent[25:27] + sent[28:]]
        # Backwards from the newest page, cursor after cursor.
        page = await messages.history(conv.id, limit=limit)
        before = None
        while True:
            want = _expected(seqs, before, None, limit)
            assert [m.seq for m in page] == want, (before, limit)
            more = _expected(seqs, before, None, limit + 1)
            assert page.has_more == (len(more) > limit), (before, limit)
            if page.next_cursor is None:
                break
            before = want[0]
            page = await messages.history(conv.id, after=page.next_cursor, limit=limit)
        # Forwards from a seq (catching up), then cursor after cursor.
        for newer_than in (0, 2, 8, 21, 29, 30, 45):
            page = await messages.history(conv.id, newer_than=newer_than, limit=limit)
            after = newer_than
            while True:
                want = _expected(seqs, None, after, limit)
                assert [m.seq for m in page] == want, (after, limit)
                more = _expected(seqs, None, after, limit + 1)
                assert page.has_more == (len(more) > limit), (after, limit)
                if page.next_cursor is None:
                    break
                after = want[-1]
                page = await messages.history(
                    conv.id, newer_than=newer_than, after=page.next_cursor, limit=limit
                )


async def test_a_seq_the_counter_never_handed_out_is_still_read(
    caas_layer: DataLayer, tenant: str
) -> None:
    """Rows written around the layer above the counter: the newest page and paging forward."""
    async with tenant_scope(tenant):
        conv, alice, messages = await _conversation(caas_layer)
        first = await messages.send(conv.id, alice, text="one")
        raw = await messages.collection().find_one({"_id": first.id})
        assert raw is not None
        stray = [dict(raw, _id=ObjectId(), seq=seq, text=f"s{seq}") for seq in (500, 900)]
        await messages.collection()._privileged().insert_many(stray)
        newest = await messages.history(conv.id, limit=2)
        assert [m.seq for m in newest] == [500, 900] and newest.has_more
        forward = await messages.history(conv.id, newer_than=1, limit=5)
        assert [m.seq for m in forward] == [500, 900] and not forward.has_more


async def test_explain_shows_one_bounded_window(caas_layer: DataLayer, tenant: str) -> None:
    """The first window of an older page is a closed seq range below the cursor: no COLLSCAN."""
    async with tenant_scope(tenant):
        conv, alice, messages = await _conversation(caas_layer)
        for i in range(12):
            await messages.send(conv.id, alice, text=f"m{i}")
        newest = await messages.history(conv.id, limit=3)  # seqs 10..12; the next page: < 10
        plan = await messages.explain_history(conv.id, after=newest.next_cursor, limit=3)
    stages, stage = [], plan["queryPlanner"]["winningPlan"]
    while stage:
        stages.append(stage["stage"])
        stage = stage.get("inputStage") or (stage.get("inputStages") or [None])[0]
    assert "IXSCAN" in stages and "COLLSCAN" not in stages
    stats = plan.get("executionStats")
    assert stats is not None
    assert stats["totalKeysExamined"] <= 4  # seqs 6..9: the window, whatever the server
