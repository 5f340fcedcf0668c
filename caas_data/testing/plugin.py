"""pytest plugin (entry point `caas_data`): a server, a layer per test, fresh tenants.

Fixtures:
    caas_server: the started server for the whole session (see `start_test_server`).
    caas_layer: a connected layer with its own database prefix, dropped after the test.
    caas_tenant: `await caas_tenant(tier=Tier.PRO)` provisions a fresh tenant, returns its id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import pytest_asyncio

from caas_data.engine.layer import DataLayer
from caas_data.tenancy.tiers import Tier
from caas_data.testing._server import ServerHandle, start_test_server
from caas_data.testing.helpers import connect_for_tests, drop_prefix_databases, new_tenant_id

__all__ = ["caas_layer", "caas_server", "caas_tenant"]

TenantFactory = Callable[..., Awaitable[str]]


@pytest.fixture(scope="session")
def caas_server() -> Iterator[ServerHandle]:
    """One server for the test session, stopped at its end."""
    server = start_test_server()
    try:
        yield server.handle
    finally:
        server.stop()


@pytest_asyncio.fixture
async def caas_layer(caas_server: ServerHandle) -> AsyncIterator[DataLayer]:
    """A layer on its own databases (a unique prefix), dropped and closed afterwards."""
    layer = await connect_for_tests(caas_server.uri)
    try:
        yield layer
    finally:
        try:
            await drop_prefix_databases(layer)
        finally:
            await layer.close()


@pytest_asyncio.fixture
async def caas_tenant(caas_layer: DataLayer) -> TenantFactory:
    """Factory: provision a fresh tenant of a tier and return its id."""

    async def provision(tier: Tier | str = Tier.FREE, *, stem: str = "t") -> str:
        tenant_id = new_tenant_id(stem)
        await caas_layer.tenants.provision(tenant_id, tier=tier)
        return tenant_id

    return provision


def pytest_report_header(config: pytest.Config) -> str:
    """Say which server kind the suite is about to use."""
    import os

    if os.environ.get("CAAS_MONGODB_URI"):
        return "caas_data: server from CAAS_MONGODB_URI"
    return "caas_data: testcontainers MongoDB if Docker answers, else embedded SecantusDB"
