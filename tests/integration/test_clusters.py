"""Two embedded servers as two clusters: placement by budget, routing, cross-cluster moves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from caas_data import DataLayer, Tier, tenant_scope
from caas_data.engine.clusters import ClusterConfig
from caas_data.errors import CapacityExhausted
from caas_data.saas import UserRepository
from caas_data.services.capacity import namespace_cost
from caas_data.testing._server import ServerHandle, start_test_server
from caas_data.testing.helpers import (
    TEST_OPERATION_TIMEOUT_MS,
    drop_prefix_databases,
    new_prefix,
    new_tenant_id,
    patient_uri,
)
from tests.integration.moving import check_after_move, raw_external_ids, seed, tenant_rows


@pytest.fixture(scope="module")
def second_server() -> Iterator[ServerHandle]:
    server = start_test_server()
    try:
        yield server.handle
    finally:
        server.stop()


async def _connect(home: str, east: str, *, home_budget: int, east_budget: int) -> DataLayer:
    import caas_data

    return await caas_data.connect(
        patient_uri(home),
        database_prefix=new_prefix(),
        operation_timeout_ms=TEST_OPERATION_TIMEOUT_MS,
        clusters={"east": ClusterConfig(patient_uri(east), namespace_budget=east_budget)},
        namespace_budget=home_budget,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def two_clusters(
    caas_server: ServerHandle, second_server: ServerHandle
) -> AsyncIterator[DataLayer]:
    layer = await _connect(
        caas_server.uri, second_server.uri, home_budget=10_000, east_budget=10_000
    )
    try:
        yield layer
    finally:
        await drop_prefix_databases(layer)
        await layer.close()


async def test_tenants_route_to_their_cluster_and_move_across(two_clusters: DataLayer) -> None:
    layer = two_clusters
    east_tenant, home_tenant = new_tenant_id("east"), new_tenant_id("home")
    await layer.tenants.provision(east_tenant, tier=Tier.PRO, cluster="east")
    await layer.tenants.provision(home_tenant, tier=Tier.ENTERPRISE, cluster="home")
    seeded = await seed(layer, east_tenant)
    await seed(layer, home_tenant, users=2, messages=1)
    east = await layer.tenants.placement(east_tenant)
    assert east.cluster == "east"
    # The data is on the east server only; the platform (directory, audit) stays home.
    east_client = layer.clusters.client("east")
    assert await east_client[east.database][f"{east_tenant}_users"].count_documents({}) == 6
    assert await layer.client[east.database][f"{east_tenant}_users"].count_documents({}) == 0
    assert f"{layer.prefix}_platform" not in await east_client.list_database_names()

    report = {u.name: u for u in await layer.tenants.cluster_report()}
    assert east_tenant in report["east"].tenants and home_tenant in report["home"].tenants
    assert report["east"].used == namespace_cost(layer)

    # Cross-cluster: the Enterprise tenant moves from home to east, online, same machinery.
    home = await layer.tenants.placement(home_tenant)
    home_seeded_ids = set(await raw_external_ids(layer, home))
    moved = await layer.tenants.move(home_tenant, cluster="east", fence_grace=0)
    assert moved.target.cluster == "east" and moved.to_tier is Tier.ENTERPRISE
    now = await layer.tenants.placement(home_tenant)
    assert now.cluster == "east"
    assert set(await raw_external_ids(layer, now)) == home_seeded_ids
    assert await tenant_rows(layer, home) == {}
    assert home.database not in await layer.client.list_database_names()
    async with tenant_scope(home_tenant, layer=layer):
        assert len((await layer.repo(UserRepository).find({})).items) == 2

    # And east -> home shared (Free): the shared collections are on the home cluster.
    await layer.tenants.move(east_tenant, to=Tier.FREE, fence_grace=0)
    shared = await layer.tenants.placement(east_tenant)
    assert shared.cluster == "home"
    assert sorted(await raw_external_ids(layer, shared)) == sorted(seeded.external_ids)
    await check_after_move(layer, seeded, east)


async def test_new_tenants_go_where_there_is_room(
    caas_server: ServerHandle, second_server: ServerHandle
) -> None:
    # Home is full with its platform and shared collections; east has room for one tenant.
    probe = await _connect(caas_server.uri, second_server.uri, home_budget=0, east_budget=0)
    cost = namespace_cost(probe)
    await probe.close()
    layer = await _connect(caas_server.uri, second_server.uri, home_budget=1, east_budget=cost)
    try:
        first, second = new_tenant_id("room"), new_tenant_id("full")
        await layer.tenants.provision(first, tier=Tier.PRO)
        assert (await layer.tenants.placement(first)).cluster == "east"
        with pytest.raises(CapacityExhausted, match="no cluster has room"):
            await layer.tenants.provision(second, tier=Tier.ENTERPRISE)
        await layer.tenants.provision(second, tier=Tier.FREE)  # shared tenants cost nothing
        report = {u.name: u for u in await layer.tenants.cluster_report()}
        assert report["east"].used == report["east"].budget == cost
        assert report["home"].used > report["home"].budget
        assert report["east"].tenants == (first,)
    finally:
        await drop_prefix_databases(layer)
        await layer.close()


async def test_the_cli_moves_a_tenant_to_another_cluster(
    two_clusters: DataLayer, caas_server: ServerHandle, second_server: ServerHandle
) -> None:
    layer = two_clusters
    tenant_id = new_tenant_id("cli")
    await layer.tenants.provision(tenant_id, tier=Tier.PRO, cluster="home")
    seeded = await seed(layer, tenant_id, users=3, messages=1)
    home = await layer.tenants.placement(tenant_id)
    env = {
        **os.environ,
        "CAAS_MONGODB_URI": patient_uri(caas_server.uri),
        "CAAS_DATABASE_PREFIX": layer.prefix,
        "CAAS_CREATE_PLATFORM_INDEXES": "false",
    }
    done = subprocess.run(
        [sys.executable, "-m", "caas_data.cli", "--cluster-uri",
         f"east={patient_uri(second_server.uri)}", "--json", "tenants", "move", tenant_id,
         "--cluster", "east", "--fence-grace", "0"],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["target"]["cluster"] == "east"
    layer.resolver.invalidate(tenant_id)  # another process switched it
    east = await layer.tenants.placement(tenant_id)
    assert (east.cluster, east.tier) == ("east", Tier.PRO)
    assert sorted(await raw_external_ids(layer, east)) == sorted(seeded.external_ids)
    await check_after_move(layer, seeded, home)
