"""Fixtures of the fault suites: a dedicated restartable server, a proxy, a layer through it.

The session's shared server (the plugin's) is never broken: these suites start their own
embedded server per worker, on its own storage and port, with test commands on
(`configureFailPoint`) and `--sync-on-commit`, and put a `FaultProxy` in front of it.
Every log record and exception text these suites see is kept for `test_secrets.py`.
"""

from __future__ import annotations

import logging
import shutil
import signal
import tempfile
import traceback
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

import caas_data
from caas_data import DataLayer, Tier
from caas_data.testing import RestartableServer, new_prefix, new_tenant_id
from caas_data.testing.proxy import FaultProxy

BUDGET_MS = 3_000
"""The operation budget of the layers under test: every call ends within it (plus slack)."""
SLACK_SECONDS = 3 * BUDGET_MS / 1000
"""Scheduling slack on a loaded machine (load average 13 on 2 cores was seen): a hang (the
60 s a server takes to expire a transaction, or forever) is still far beyond it."""

MODEL_TIERS = {"shared": Tier.FREE, "pro": Tier.PRO, "enterprise": Tier.ENTERPRISE}

EVIDENCE: list[str] = []
"""Every log record and exception text seen by the fault suites (grepped for secrets)."""


def note_error(error: BaseException) -> None:
    """Keep an exception's full text (repr, str and the traceback with its causes)."""
    EVIDENCE.append(repr(error))
    EVIDENCE.append("".join(traceback.format_exception(error)))


class _Keep(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        EVIDENCE.append(self.format(record))


@pytest.fixture(autouse=True)
def keep_logs() -> Iterator[None]:
    """Record every log record of caas_data (DEBUG up) and of everything else (INFO up)."""
    handler = _Keep(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root, ours = logging.getLogger(), logging.getLogger("caas_data")
    levels = (root.level, ours.level)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    ours.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])


@pytest.fixture(scope="session")
def fault_server() -> Iterator[RestartableServer]:
    """An embedded server of this worker's fault suites, restartable on its own storage."""
    storage = Path(tempfile.mkdtemp(prefix="caas-faults-"))
    server = RestartableServer(storage / "db")
    server.start()
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(storage, ignore_errors=True)


@pytest_asyncio.fixture
async def raw(fault_server: RestartableServer) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """A raw client straight to the server (no proxy): fail points and the final checks."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        fault_server.uri, tz_aware=True, uuidRepresentation="standard", timeoutMS=30_000
    )
    try:
        yield client
    finally:
        await client.close()


async def _answers(uri: str) -> bool:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, timeoutMS=15_000)
    try:
        await client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        await client.close()


@pytest_asyncio.fixture
async def proxy(fault_server: RestartableServer) -> AsyncIterator[FaultProxy]:
    """A fault proxy in front of the server, healed and closed after the test."""
    fault_server.start()  # a test that stopped it and failed midway must not break the next
    if not await _answers(fault_server.uri):
        fault_server.stop(signal.SIGKILL)  # a test left it unable to answer: start afresh
        fault_server.start()
    async with FaultProxy("127.0.0.1", fault_server.port) as p:
        yield p


async def connect_layer(uri: str, prefix: str | None = None) -> DataLayer:
    """A layer with the short budget of the fault suites (on databases of its own by default)."""
    return await caas_data.connect(
        uri, database_prefix=prefix or new_prefix(), operation_timeout_ms=BUDGET_MS
    )


@pytest_asyncio.fixture
async def layer(proxy: FaultProxy, fault_server: RestartableServer) -> AsyncIterator[DataLayer]:
    """A layer that reaches the server only through `proxy`."""
    connected = await connect_layer(proxy.uri(fault_server.uri))
    try:
        yield connected
    finally:
        proxy.heal()
        fault_server.start()
        await connected.close()
        # A fresh client: the layer's may still be rediscovering a server a fault upset.
        cleaner: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            fault_server.uri, timeoutMS=30_000
        )
        try:
            # A transaction whose commit never reached the server stays open until it expires
            # (60 s) and blocks dropping its database: end every session of this worker's
            # dedicated server first.
            await cleaner.admin.command("killAllSessions", [])
            for name in await cleaner.list_database_names():
                if name.startswith(connected.prefix + "_"):
                    await cleaner.drop_database(name)
        except PyMongoError:
            pass  # best effort: the worker's server and its storage go at session end
        finally:
            await cleaner.close()


@pytest_asyncio.fixture(params=list(MODEL_TIERS))
async def model_tenant(request: pytest.FixtureRequest, layer: DataLayer) -> str:
    """A fresh tenant of one isolation model (the test runs once per model)."""
    tenant_id = new_tenant_id(request.param[:3])
    await layer.tenants.provision(tenant_id, tier=MODEL_TIERS[request.param])
    return tenant_id


@pytest_asyncio.fixture
async def pro_tenant(layer: DataLayer) -> str:
    """One fresh PRO tenant, for fault mechanics that do not depend on the isolation model
    (the model-dependent paths run in all three through `model_tenant`)."""
    tenant_id = new_tenant_id("pro")
    await layer.tenants.provision(tenant_id, tier=Tier.PRO)
    return tenant_id


@asynccontextmanager
async def fail_point(
    raw: AsyncMongoClient[dict[str, Any]], mode: Any, **data: Any
) -> AsyncIterator[None]:
    """Arm the server's `failCommand` fail point for the block, and always disarm it."""
    await raw.admin.command("configureFailPoint", "failCommand", mode=mode, data=data)
    try:
        yield
    finally:
        await raw.admin.command("configureFailPoint", "failCommand", mode="off")
