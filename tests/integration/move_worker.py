"""Run one tenant move in a child process and SIGKILL it at a chosen progress event.

`python -m tests.integration.move_worker URI PREFIX TENANT TIER EVENT NTH [write]`: connects
to the test layer's databases, moves TENANT to TIER and kills itself (SIGKILL: no clean-up,
no `finally`) the NTH time the move reports EVENT. Exit code 0 means EVENT never came. With
`write`, a task creates users `k0`, `k1`, ... in the tenant's scope during the move (a fenced
write is retried; it stops 20 writes after the copy began) and prints each acknowledged
external id on its own line.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

from caas_data import DataLayer, Tier, tenant_scope
from caas_data.errors import TenantMoving
from caas_data.saas import UserRepository
from caas_data.testing.helpers import connect_for_tests

WRITES_AFTER_THE_COPY_BEGAN = 20  # enough for the stream to record a token; bounded


async def write_during_the_move(layer: DataLayer, tenant_id: str, copying: asyncio.Event) -> None:
    serial = after = 0
    while after < WRITES_AFTER_THE_COPY_BEGAN:
        try:
            async with tenant_scope(tenant_id, layer=layer):
                await layer.repo(UserRepository).create(
                    {"external_id": f"k{serial}", "display_name": "k"}
                )
        except TenantMoving:
            await asyncio.sleep(0.01)
            continue
        print(f"k{serial}", flush=True)
        serial += 1
        after += copying.is_set()
        await asyncio.sleep(0.02)  # paced: the move need not chase a flood


async def main(
    uri: str, prefix: str, tenant_id: str, tier: str, event: str, nth: int, write: bool
) -> None:
    layer = await connect_for_tests(uri, database_prefix=prefix)
    seen = 0
    copying = asyncio.Event()

    def on_progress(name: str, details: Mapping[str, Any]) -> None:
        nonlocal seen
        if name == "copied_batch":
            copying.set()
        if name == event:
            seen += 1
            if seen == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    writer = (
        asyncio.create_task(write_during_the_move(layer, tenant_id, copying)) if write else None
    )
    await asyncio.sleep(0.05 if write else 0)  # the first writes come before the copy
    await layer.tenants.move(
        tenant_id, to=Tier(tier), batch_size=2, fence_grace=0, on_progress=on_progress
    )
    if writer is not None:
        writer.cancel()
    await layer.close()


if __name__ == "__main__":
    uri, prefix, tenant, tier, event, nth = sys.argv[1:7]
    asyncio.run(main(uri, prefix, tenant, tier, event, int(nth), sys.argv[7:] == ["write"]))
