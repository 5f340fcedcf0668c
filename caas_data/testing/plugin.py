"""pytest plugin (entry point `caas_data`): a server, a layer, fresh tenants.

Fixtures:
    caas_server: the started server for the whole session (see `start_test_server`).
    caas_layer: a connected layer. By default the session's one, on its own database prefix
        (dropped at the end): tests stay apart by using their own tenants (`caas_tenant`),
        which is how the platform keeps customers apart too, and costs no set-up per test.
        A test marked `@pytest.mark.caas_isolated` gets a layer on databases of its own
        instead, dropped after it: for tests of platform-wide state (every tenant's rows
        in a `system_scope()`, the platform audit chain, global plans or IP lists).
    caas_session_layer: the session's layer itself.
    caas_isolated_layer: a layer on databases of its own for one test.
    caas_tenant: `await caas_tenant(tier=Tier.PRO)` provisions a fresh tenant of
        `caas_layer` and returns its id; the tenant is deprovisioned after the test.
    caas_factories: `Factories` on `caas_layer`: valid documents of every domain, created
        through the repositories inside the caller's `tenant_scope()`
        (`await caas_factories.message()`; see `caas_data.testing.factories`).

The session-scoped fixtures need pytest-asyncio's session loop: set
`asyncio_default_fixture_loop_scope = "session"` and `asyncio_default_test_loop_scope =
"session"` in the pytest configuration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

import pytest

from caas_data.documents.base import BaseDocument
from caas_data.errors import optional_dependency
from caas_data.layer import DataLayer
from caas_data.tenancy.tiers import Tier
from caas_data.testing._server import ServerHandle, start_test_server
from caas_data.testing.factories import Factories
from caas_data.testing.helpers import connect_for_tests, drop_prefix_databases, new_tenant_id

# pytest loads this plugin in every environment that has caas-data and pytest; the async
# fixtures need pytest-asyncio, which comes with the `test` extra.
with optional_dependency("pytest_asyncio", extra="test", feature="the caas_data pytest plugin"):
    import pytest_asyncio

__all__ = [
    "ISOLATED_MARKER",
    "caas_factories",
    "caas_isolated_layer",
    "caas_layer",
    "caas_server",
    "caas_session_layer",
    "caas_tenant",
]

ISOLATED_MARKER = "caas_isolated"

TenantFactory = Callable[..., Awaitable[str]]


@pytest.fixture(scope="session")
def caas_server() -> Iterator[ServerHandle]:
    """One server for the test session, stopped at its end."""
    server = start_test_server()
    try:
        yield server.handle
    finally:
        server.stop()


@pytest.fixture(scope="session")
def caas_documents() -> Sequence[type[BaseDocument]]:
    """Your own document classes, registered with the test layers beside the built-in ones.

    Override it in your conftest: `@pytest.fixture(scope="session") def caas_documents():
    return [Ticket]`.
    """
    return ()


async def _layer_on_own_prefix(
    uri: str, documents: Sequence[type[BaseDocument]]
) -> AsyncIterator[DataLayer]:
    layer = await connect_for_tests(uri, documents=documents)
    try:
        yield layer
    finally:
        try:
            await drop_prefix_databases(layer)
        finally:
            await layer.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def caas_session_layer(
    caas_server: ServerHandle, caas_documents: Sequence[type[BaseDocument]]
) -> AsyncIterator[DataLayer]:
    """The session's layer on its own databases (a unique prefix), dropped at the end."""
    async for layer in _layer_on_own_prefix(caas_server.uri, caas_documents):
        yield layer


@pytest_asyncio.fixture(loop_scope="session")
async def caas_isolated_layer(
    caas_server: ServerHandle, caas_documents: Sequence[type[BaseDocument]]
) -> AsyncIterator[DataLayer]:
    """A layer on databases of its own for one test, dropped and closed afterwards."""
    async for layer in _layer_on_own_prefix(caas_server.uri, caas_documents):
        yield layer


@pytest.fixture
def caas_layer(request: pytest.FixtureRequest) -> DataLayer:
    """The session's layer, or databases of its own for a test marked `caas_isolated`."""
    isolated = request.node.get_closest_marker(ISOLATED_MARKER) is not None
    layer = request.getfixturevalue("caas_isolated_layer" if isolated else "caas_session_layer")
    assert isinstance(layer, DataLayer)
    return layer


@pytest_asyncio.fixture(loop_scope="session")
async def caas_tenant(caas_layer: DataLayer) -> AsyncIterator[TenantFactory]:
    """Factory: provision a fresh tenant of a tier in `caas_layer` and return its id.

    The tenants it made are deprovisioned (their data deleted) when the test ends.
    """
    made: list[str] = []

    async def provision(tier: Tier | str = Tier.FREE, *, stem: str = "t") -> str:
        tenant_id = new_tenant_id(stem)
        made.append(tenant_id)
        await caas_layer.tenants.provision(tenant_id, tier=tier)
        return tenant_id

    yield provision
    if not caas_layer.closed:
        for tenant_id in made:
            await caas_layer.tenants.deprovision(tenant_id, actor="caas_data.testing")


@pytest.fixture
def caas_factories(caas_layer: DataLayer) -> Factories:
    """Document factories on `caas_layer`; call them inside a `tenant_scope()`."""
    return Factories(caas_layer)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, so `--strict-markers` suites can use it."""
    config.addinivalue_line(
        "markers", f"{ISOLATED_MARKER}: caas_layer gives this test databases of its own"
    )


def pytest_report_header(config: pytest.Config) -> str:
    """Say which server kind the suite is about to use."""
    import os

    if os.environ.get("CAAS_MONGODB_URI"):
        return "caas_data: server from CAAS_MONGODB_URI"
    return "caas_data: testcontainers MongoDB if Docker answers, else embedded SecantusDB"
