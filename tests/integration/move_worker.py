"""Run one tenant move in a child process and SIGKILL it at a chosen progress event.

`python -m tests.integration.move_worker URI PREFIX TENANT TIER EVENT NTH`: connects to the
test layer's databases, moves TENANT to TIER and kills itself (SIGKILL: no clean-up, no
`finally`) the NTH time the move reports EVENT. Exit code 0 means EVENT never came.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

from caas_data import Tier
from caas_data.testing.helpers import connect_for_tests


async def main(uri: str, prefix: str, tenant_id: str, tier: str, event: str, nth: int) -> None:
    layer = await connect_for_tests(uri, database_prefix=prefix)
    seen = 0

    def on_progress(name: str, details: Mapping[str, Any]) -> None:
        nonlocal seen
        if name == event:
            seen += 1
            if seen == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    await layer.tenants.move(
        tenant_id, to=Tier(tier), batch_size=2, fence_grace=0, on_progress=on_progress
    )
    await layer.close()


if __name__ == "__main__":
    uri, prefix, tenant, tier, event, nth = sys.argv[1:7]
    asyncio.run(main(uri, prefix, tenant, tier, event, int(nth)))
