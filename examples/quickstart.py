"""Quickstart: three tenants, one per isolation model, and where their users live.

Run with `make demo`. It starts the test server of `caas_data.testing` (CAAS_MONGODB_URI if
set, else a MongoDB container if Docker answers, else the embedded server), so it needs no
set-up; against your own cluster, set CAAS_MONGODB_URI.
"""

from __future__ import annotations

import asyncio

import caas_data
from caas_data import Tier, tenant_scope
from caas_data.saas import User, UserRepository
from caas_data.testing import drop_prefix_databases, new_prefix, start_test_server

TENANTS = {"acme-free": Tier.FREE, "globex-pro": Tier.PRO, "initech-ent": Tier.ENTERPRISE}


async def main(uri: str, prefix: str) -> None:
    layer = await caas_data.connect(uri, database_prefix=prefix)
    try:
        for tenant_id, tier in TENANTS.items():
            await layer.tenants.provision(tenant_id, tier=tier, name=tenant_id.title())

        for tenant_id in TENANTS:
            async with tenant_scope(tenant_id):
                users = layer.repo(UserRepository)
                ada = await users.create({"external_id": "u-1", "display_name": "Ada"})
                await users.create({"external_id": "u-2", "display_name": "Grace"})
                renamed = await users.update(ada, display_name=f"Ada of {tenant_id}")
                # Beanie's own query API is routed the same way
                found = await User.find(User.external_id == "u-1").to_list()
                assert [u.display_name for u in found] == [renamed.display_name]

        print(f"{'tenant':<14}{'tier':<12}{'database':<28}{'collection':<26}users")
        for tenant_id in TENANTS:
            placement = await layer.tenants.placement(tenant_id)
            async with tenant_scope(tenant_id):
                users = layer.repo(UserRepository)
                page = await users.find(sort="external_id")
                names = ", ".join(u.display_name for u in page)
            print(
                f"{tenant_id:<14}{placement.tier:<12}{placement.database:<28}"
                f"{placement.collection_name('users'):<26}{names}"
            )
    finally:
        await drop_prefix_databases(layer)
        await layer.close()


if __name__ == "__main__":
    server = start_test_server()
    try:
        print(f"server: {server.handle.description}\n")
        # The embedded server lives in memory: use the real prefix. Elsewhere, a unique one,
        # since the demo drops its databases at the end.
        prefix = "caas" if server.handle.kind == "embedded" else new_prefix()
        asyncio.run(main(server.handle.uri, prefix))
    finally:
        server.stop()
