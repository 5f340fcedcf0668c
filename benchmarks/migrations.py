"""Schema migration at 1,000 tenants: per tenant and in total (`python -m benchmarks.migrations`).

The anchor (issue 15): django-tenants takes hours to migrate 1,500 schemas one by one.

Set-up, said plainly: the 1,000 tenants are shared-model (FREE) tenants written straight into
the directory and the shared `ops_notes` collection with `insert_many` (provisioning them one
by one through `layer.tenants.provision` is not what is measured), plus a few Pro and
Enterprise tenants provisioned normally. Each tenant has NOTES documents at schema version 1;
the class declares two steps (split a name, add tags), so each document is rewritten once per
step. Runs on CAAS_MONGODB_URI, or on the embedded server started by caas_data.testing.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

from caas_data import Tier
from caas_data.documents.base import utcnow
from caas_data.documents.platform import SaasClient
from caas_data.layer import DataLayer
from caas_data.operations import migrate
from caas_data.tenancy.tiers import Placement
from caas_data.testing import start_test_server
from caas_data.testing.helpers import connect_for_tests, drop_prefix_databases
from tests.integration.migration_fixtures import DOCUMENTS

SHARED_TENANTS = int(os.environ.get("BENCH_TENANTS", "1000"))
OWN_PLACEMENTS = {Tier.PRO: 10, Tier.ENTERPRISE: 5}
NOTES = 10


async def _seed(layer: DataLayer) -> list[str]:
    now = utcnow()
    ids = [f"bench-{i:05d}" for i in range(SHARED_TENANTS)]
    directory = layer.unguarded_platform_collection(SaasClient, why="benchmark seeding")
    await directory.insert_many(
        [
            {
                "tenant_id": t,
                "name": t,
                "tier": "free",
                "status": "active",
                "placement": {"database": f"{layer.prefix}_shared", "collection_prefix": ""},
                "created_at": now,
                "updated_at": now,
                "__v": 0,
                "schema_version": 1,
            }
            for t in ids
        ]
    )
    # The shared collections exist once, for every shared tenant.
    await layer.tenants.ensure_collections(
        Placement.for_tier(ids[0], Tier.FREE, database_prefix=layer.prefix)
    )
    notes = layer.unguarded_collection(f"{layer.prefix}_shared", "ops_notes", why="seeding")
    rows = [
        {"tenant_id": t, "full_name": f"Name{n} Last", "schema_version": 1, "__v": 0}
        for t in ids
        for n in range(NOTES)
    ]
    for start in range(0, len(rows), 5000):
        await notes.insert_many(rows[start : start + 5000])
    own = []
    for tier, count in OWN_PLACEMENTS.items():
        for i in range(count):
            tenant_id = f"bench-{tier.value}-{i}"
            await layer.tenants.provision(tenant_id, tier=tier)
            own.append(tenant_id)
            database = layer.client[
                f"{layer.prefix}_{tenant_id}"
                if tier is Tier.ENTERPRISE
                else f"{layer.prefix}_shared"
            ]
            name = "ops_notes" if tier is Tier.ENTERPRISE else f"{tenant_id}_ops_notes"
            await database[name].insert_many(
                [
                    {"tenant_id": tenant_id, "full_name": f"N{n} L", "schema_version": 1, "__v": 0}
                    for n in range(NOTES)
                ]
            )
    return ids + own


async def main() -> None:
    uri = os.environ.get("CAAS_MONGODB_URI")
    server = None
    if not uri:
        server = start_test_server()
        uri = server.handle.uri
    layer = await connect_for_tests(uri, documents=DOCUMENTS)
    try:
        started = time.perf_counter()
        tenants = await _seed(layer)
        seconds = time.perf_counter() - started
        print(f"seeded {len(tenants)} tenants x {NOTES} notes in {seconds:.1f} s")
        dry = await migrate(layer, dry_run=True, concurrency=16)
        print(f"dry run: {dry.pending} document-steps pending, {dry.seconds:.1f} s")
        for concurrency in (16, 1):
            report = await migrate(layer, concurrency=concurrency)
            assert not report.failed, report.failed
            per = [t.seconds for t in report.tenants]
            print(
                f"migrate, concurrency {concurrency:>2}: {len(report.tenants)} tenants, "
                f"{report.migrated} document-steps in {report.seconds:.1f} s total; per tenant "
                f"median {statistics.median(per) * 1000:.0f} ms, "
                f"p95 {sorted(per)[int(len(per) * 0.95)] * 1000:.0f} ms; "
                f"{report.seconds / len(report.tenants) * 1000:.1f} ms of wall time per tenant"
            )
            back = await migrate(layer, document="ops_notes", to_version=1, concurrency=16)
            assert not back.failed, back.failed
            print(f"  back to version 1 (concurrency 16): {back.seconds:.1f} s")
    finally:
        await drop_prefix_databases(layer)
        await layer.close()
        if server is not None:
            server.stop()
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
