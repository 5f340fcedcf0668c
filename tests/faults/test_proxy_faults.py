"""Connections delayed, dropped, cut mid-reply or blackholed between the layer and the server.

Every call either succeeds or raises a `CaasDataError` (`RetryableError` for these transient
faults) within the operation budget; acknowledged sends are stored exactly once; seqs stay
1..N. Runs in all three isolation models.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from caas_data import DataLayer, RepositoryError, RetryableError, tenant_scope
from caas_data.repositories.counters import CounterRepository
from caas_data.repositories.saas.messaging import MessageRepository
from caas_data.testing.load_checks import check_acknowledged, check_gap_free
from caas_data.testing.proxy import FaultProxy
from tests.faults.conftest import fail_point
from tests.faults.helpers import bounded, chat, fill_all_gaps, send_until_acked

INSERT = b"\x02insert\x00"  # the command name as it opens an OP_MSG body (a BSON string)
FIND_AND_MODIFY = b"\x02findAndModify\x00"
UPDATE = b"\x02update\x00"


async def test_calls_succeed_or_fail_clearly_while_connections_break(
    layer: DataLayer, proxy: FaultProxy, model_tenant: str
) -> None:
    async with tenant_scope(model_tenant, layer=layer):
        people, conversation = await chat(layer)
    rng = random.Random(17)
    stop = asyncio.Event()

    async def chaos() -> None:
        for _ in range(12):  # a bounded number of faults, then the senders must get through
            if stop.is_set():
                return
            fault = rng.choice(["drop", "cut", "cut", "delay", "none"])
            if fault == "drop":
                proxy.drop_connections()
            elif fault == "cut":
                marker = rng.choice([INSERT, FIND_AND_MODIFY, UPDATE, b"\x02find\x00"])
                proxy.cut_on(marker, after_reply=rng.random() < 0.5)
            elif fault == "delay":
                proxy.delay = 0.02
            await asyncio.sleep(rng.uniform(0.1, 0.3))
            proxy.delay = 0.0

    async def sender(index: int) -> list:
        acks = []
        async with tenant_scope(model_tenant, layer=layer):
            messages = layer.repo(MessageRepository)
            for n in range(4):
                ack = await send_until_acked(
                    layer, model_tenant, conversation.id, people[index % 3], f"s{index}-{n}"
                )
                assert ack is not None, "a send never got through after the faults"
                acks.append(ack)
                try:
                    page = await bounded(messages.history(conversation.id, limit=20))
                    assert all(m.tenant_id == model_tenant for m in page)
                except RetryableError:
                    pass
        return acks

    chaos_task = asyncio.create_task(chaos())
    try:
        results = await asyncio.gather(*(sender(i) for i in range(4)))
    finally:
        stop.set()
        await chaos_task
        proxy.heal()
    acks = [ack for result in results for ack in result]
    assert len(acks) == 16
    filled = await fill_all_gaps(layer, model_tenant, {conversation.id})
    print(f"proxy chaos: {proxy.accepted} connections, {filled} number(s) left for fill_gaps")
    assert await check_acknowledged(layer, acks, tenants=[model_tenant]) == []


async def test_a_blackholed_server_fails_calls_within_the_budget(
    layer: DataLayer, proxy: FaultProxy, pro_tenant: str
) -> None:
    async with tenant_scope(pro_tenant, layer=layer):
        people, conversation = await chat(layer)
        messages = layer.repo(MessageRepository)
        proxy.blackhole()
        with pytest.raises(RetryableError):
            await bounded(messages.send(conversation.id, people[0], text="lost?"))
        with pytest.raises(RetryableError):
            await bounded(messages.history(conversation.id))
        proxy.heal()
        proxy.drop_connections()  # the swallowed requests' connections are useless now
        sent = await bounded(messages.send(conversation.id, people[0], text="back"))
    await fill_all_gaps(layer, pro_tenant, {conversation.id})
    assert await check_gap_free(layer, pro_tenant, [conversation.id]) == []
    assert sent.seq >= 1


async def test_a_reply_cut_after_the_insert_ran_is_not_applied_twice(
    layer: DataLayer, proxy: FaultProxy, pro_tenant: str
) -> None:
    async with tenant_scope(pro_tenant, layer=layer):
        people, conversation = await chat(layer)
        messages = layer.repo(MessageRepository)
        proxy.cut_on(INSERT, after_reply=True)  # the server stores it; the answer is lost
        ack = await send_until_acked(layer, pro_tenant, conversation.id, people[0], "once")
        assert ack is not None and ack.seq == 1
        again = await messages.send(conversation.id, people[0], text="x", client_message_id="once")
        assert again.id == ack.message_id
    assert await check_acknowledged(layer, [ack], tenants=[pro_tenant]) == []


async def test_a_send_failing_after_its_number_was_taken_leaves_a_tombstone(
    layer: DataLayer, raw, pro_tenant: str
) -> None:
    """The seq a failed send took is not reused nor left open: a deleted placeholder holds
    it (history shows it as deleted), and the next send gets the next number."""
    async with tenant_scope(pro_tenant, layer=layer):
        people, conversation = await chat(layer)
        messages = layer.repo(MessageRepository)
        assert (await messages.send(conversation.id, people[0], text="one")).seq == 1
        async with fail_point(raw, {"times": 1}, failCommands=["insert"], errorCode=2):
            with pytest.raises(RepositoryError) as failed:
                await bounded(messages.send(conversation.id, people[1], text="two"))
        assert not isinstance(failed.value, RetryableError)
        page = await messages.history(conversation.id, viewer_id=people[1])
        assert [(m.seq, m.is_deleted) for m in page] == [(1, False), (2, True)]
        assert (await messages.send(conversation.id, people[0], text="three")).seq == 3
        key = MessageRepository.counter_key(conversation.id)
        assert await layer.repo(CounterRepository).current(key) == 3
    assert await check_gap_free(layer, pro_tenant, [conversation.id]) == []


async def test_a_lost_allocation_reply_leaves_no_gap(
    layer: DataLayer, proxy: FaultProxy, pro_tenant: str
) -> None:
    """The counter moved but its answer was cut: the send fills the unknown number before
    raising, so the conversation stays gap-free without waiting for a sweeper."""
    async with tenant_scope(pro_tenant, layer=layer):
        people, conversation = await chat(layer)
        messages = layer.repo(MessageRepository)
        assert (await messages.send(conversation.id, people[0], text="one")).seq == 1
        proxy.cut_on(FIND_AND_MODIFY, after_reply=True)  # number 2 is taken, its answer lost
        with pytest.raises(RetryableError):
            await bounded(messages.send(conversation.id, people[0], text="cut"))
        sent = await messages.send(conversation.id, people[0], text="next")
        assert sent.seq == 3
        page = await messages.history(conversation.id, viewer_id=people[1])
        assert [(m.seq, m.is_deleted) for m in page] == [(1, False), (2, True), (3, False)]
    assert await check_gap_free(layer, pro_tenant, [conversation.id]) == []


async def test_a_sender_cut_off_mid_send_does_not_stall_the_conversation(
    layer: DataLayer, proxy: FaultProxy, fault_server, model_tenant: str
) -> None:
    """Issue 17's stall: a sender whose connection dies after it took a number (and cannot
    even abort: everything it sends is swallowed) holds nothing, so the other senders of the
    conversation go on at once instead of waiting for the server to expire a transaction."""
    from tests.faults.conftest import connect_layer

    async with tenant_scope(model_tenant, layer=layer):
        people, conversation = await chat(layer)
    # Another app process, not behind the proxy.
    others = await connect_layer(fault_server.uri, prefix=layer.prefix)
    try:
        proxy.cut_on(INSERT, after_reply=False)
        proxy.blackhole()  # from now on the first process is cut off entirely

        async def doomed() -> None:
            async with tenant_scope(model_tenant, layer=layer):
                with pytest.raises(RetryableError):
                    await bounded(
                        layer.repo(MessageRepository).send(conversation.id, people[0], text="x")
                    )

        stuck = asyncio.create_task(doomed())
        await asyncio.sleep(0.3)  # it has taken its number and is waiting on the insert
        start = time.monotonic()
        async with others.tenant_scope(model_tenant):
            sent = [
                await bounded(
                    others.repo(MessageRepository).send(conversation.id, people[1], text=f"{i}")
                )
                for i in range(5)
            ]
        print(f"5 sends beside a dead sender: {time.monotonic() - start:.3f}s")
        await stuck
        proxy.heal()
        assert len({m.seq for m in sent}) == 5
    finally:
        proxy.heal()
        await others.close()
    # The dead sender could not fill its number: the sweeper does.
    assert await fill_all_gaps(layer, model_tenant, {conversation.id}) <= 1
    assert await check_gap_free(layer, model_tenant, [conversation.id]) == []
