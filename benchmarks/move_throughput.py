"""Move throughput and write pause on the embedded server (numbers for the README).

`python benchmarks/move_throughput.py [DOCUMENTS]` seeds a Free tenant with DOCUMENTS users
(raw inserts, to keep the set-up short), then moves it Free -> Pro -> Enterprise -> Free and
prints documents/s of each move and its write pause (fence to switch). Not part of CI.
"""

from __future__ import annotations

import asyncio
import sys

from caas_data import Tier
from caas_data.documents.base import utcnow
from caas_data.testing._server import start_test_server
from caas_data.testing.helpers import connect_for_tests, drop_prefix_databases


async def main(uri: str, documents: int) -> None:
    layer = await connect_for_tests(uri)
    try:
        tenant = "bench-move"
        await layer.tenants.provision(tenant, tier=Tier.FREE)
        placement = await layer.tenants.placement(tenant)
        users = layer.unguarded_collection(placement.database, "users", why="benchmark seed")
        now = utcnow()
        for start in range(0, documents, 1000):
            await users.insert_many(
                [
                    {
                        "tenant_id": tenant,
                        "external_id": f"u{i}",
                        "display_name": f"User {i}",
                        "status": "active",
                        "__v": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(start, min(start + 1000, documents))
                ]
            )
        for tier in (Tier.PRO, Tier.ENTERPRISE, Tier.FREE):
            report = await layer.tenants.move(tenant, to=tier, fence_grace=0)
            print(
                f"{report.from_tier} -> {report.to_tier}: {report.documents} documents in "
                f"{report.seconds:.2f} s = {report.documents / report.seconds:.0f} documents/s; "
                f"write pause {report.fence_seconds:.2f} s"
            )
    finally:
        await drop_prefix_databases(layer)
        await layer.close()


if __name__ == "__main__":
    server = start_test_server()
    try:
        asyncio.run(main(server.handle.uri, int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
    finally:
        server.stop()
