"""Move throughput and write pause on the embedded server (numbers for the README).

`python benchmarks/move_throughput.py [DOCUMENTS] [WRITERS]` seeds a Free tenant with
DOCUMENTS users (raw inserts, to keep the set-up short), then moves it Free -> Pro ->
Enterprise -> Free and prints documents/s of each move and its write pause (fence to
switch). With WRITERS, that many tasks create users in the tenant's scope during each move
(one write every 50 ms each, a fenced write retried), and the line also gives the writes
acknowledged and the fenced retries. Not part of CI.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from caas_data import DataLayer, Tier, tenant_scope
from caas_data.documents.base import utcnow
from caas_data.errors import TenantMoving
from caas_data.saas import UserRepository
from caas_data.testing._server import start_test_server
from caas_data.testing.helpers import connect_for_tests, drop_prefix_databases


class Writers:
    """Tasks creating users in the tenant's scope until stopped."""

    def __init__(self, layer: DataLayer, tenant: str, count: int, label: str) -> None:
        self.layer, self.tenant, self.label = layer, tenant, label
        self.acknowledged = self.fenced = 0
        self.serial = 0
        self.stop = asyncio.Event()
        self.tasks = [asyncio.create_task(self.write()) for _ in range(count)]

    async def write(self) -> None:
        while not self.stop.is_set():
            self.serial += 1
            external_id = f"{self.label}-w{self.serial}"
            while True:
                try:
                    async with tenant_scope(self.tenant, layer=self.layer):
                        await self.layer.repo(UserRepository).create(
                            {"external_id": external_id, "display_name": "w"}
                        )
                    break
                except TenantMoving:
                    self.fenced += 1
                    await asyncio.sleep(0.01)
            self.acknowledged += 1
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)


async def seed_users(layer: DataLayer, tenant: str, documents: int) -> None:
    """`documents` users of `tenant`, inserted raw in batches (a short set-up)."""
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


async def move_round(
    layer: DataLayer, tenant: str, *, writers: int = 0
) -> list[tuple[str, dict[str, Any]]]:
    """Move `tenant` Free -> Pro -> Enterprise -> Free: a line and the figures of each move."""
    out = []
    for tier in (Tier.PRO, Tier.ENTERPRISE, Tier.FREE):
        load = Writers(layer, tenant, writers, tier.value) if writers else None
        report = await layer.tenants.move(tenant, to=tier, fence_grace=0)
        figures: dict[str, Any] = {
            "from": str(report.from_tier),
            "to": str(report.to_tier),
            "documents": report.documents,
            "seconds": report.seconds,
            "documents_per_s": report.documents / report.seconds if report.seconds else 0.0,
            "write_pause_s": report.fence_seconds,
        }
        line = (
            f"{report.from_tier} -> {report.to_tier}: {report.documents} documents in "
            f"{report.seconds:.2f} s = {figures['documents_per_s']:.0f} documents/s; "
            f"write pause {report.fence_seconds:.2f} s"
        )
        if load is not None:
            await load.close()
            line += (
                f"; {writers} writers: {load.acknowledged} writes acknowledged, "
                f"{report.caught_up} caught up, {load.fenced} fenced retries"
            )
        out.append((line, figures))
    return out


async def main(uri: str, documents: int, writers: int) -> None:
    layer = await connect_for_tests(uri)
    try:
        tenant = "bench-move"
        await layer.tenants.provision(tenant, tier=Tier.FREE)
        await seed_users(layer, tenant, documents)
        for line, _ in await move_round(layer, tenant, writers=writers):
            print(line, flush=True)
    finally:
        await drop_prefix_databases(layer)
        await layer.close()


if __name__ == "__main__":
    documents = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    writers = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    server = start_test_server()
    try:
        asyncio.run(main(server.handle.uri, documents, writers))
    finally:
        server.stop()
