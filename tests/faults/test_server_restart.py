"""The server stopped (SIGTERM, and SIGKILL) and restarted on the same storage and port while
senders keep sending: calls fail clearly while it is down, the layer recovers without a
restart of its own, and every acknowledged send survives (w: majority; the embedded server
fsyncs its log at each commit with `--sync-on-commit`, as `j: true` does on MongoDB)."""

from __future__ import annotations

import asyncio
import signal

import pytest

from caas_data import DataLayer, RetryableError, tenant_scope
from caas_data.repositories.saas.messaging import MessageRepository
from caas_data.testing import RestartableServer
from caas_data.testing.load_checks import check_acknowledged
from tests.faults.conftest import connect_layer
from tests.faults.helpers import bounded, chat, fill_all_gaps, send_until_acked


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_acknowledged_sends_survive_a_restart_mid_workload(
    fault_server: RestartableServer, pro_tenant: str, layer: DataLayer, how: signal.Signals
) -> None:
    direct = await connect_layer(fault_server.uri, prefix=layer.prefix)  # no proxy in between
    try:
        async with tenant_scope(pro_tenant, layer=direct):
            people, conversation = await chat(direct)
        down = asyncio.Event()
        failed_while_down: list[BaseException] = []

        async def sender(index: int) -> list:
            acks = []
            async with tenant_scope(pro_tenant, layer=direct):
                for n in range(8):
                    ack = await send_until_acked(
                        direct, pro_tenant, conversation.id, people[index], f"r{index}-{n}"
                    )
                    assert ack is not None
                    acks.append(ack)
            return acks

        async def outage() -> None:
            await asyncio.sleep(0.3)
            fault_server.stop(how)
            down.set()
            async with tenant_scope(pro_tenant, layer=direct):
                with pytest.raises(RetryableError) as raised:
                    await bounded(direct.repo(MessageRepository).history(conversation.id))
                failed_while_down.append(raised.value)
            fault_server.start()

        results = await asyncio.gather(*(sender(i) for i in range(3)), outage())
        assert down.is_set() and len(failed_while_down) == 1
        acks = [ack for result in results[:3] for ack in result]
        assert len(acks) == 24
        # A sender cut off by the outage may not have been able to fill its number.
        await fill_all_gaps(direct, pro_tenant, {conversation.id})
        assert await check_acknowledged(direct, acks, tenants=[pro_tenant]) == []
    finally:
        fault_server.start()
        await direct.close()
