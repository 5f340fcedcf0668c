"""Small helpers for tests and demos: unique names and clean-up."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from caas_data.config import EncryptionOptions
from caas_data.documents.base import BaseDocument
from caas_data.layer import DataLayer, connect

__all__ = [
    "TEST_MONITOR_TIMEOUT_MS",
    "TEST_NAMESPACE_BUDGET",
    "TEST_OPERATION_TIMEOUT_MS",
    "connect_for_tests",
    "drop_prefix_databases",
    "layer_for_tests",
    "new_prefix",
    "new_tenant_id",
    "patient_uri",
]

# The embedded server is slow and CI machines are small: give operations two minutes, not
# 10 s, and the driver's monitor five (see `patient_uri`).
TEST_OPERATION_TIMEOUT_MS = 120_000
TEST_MONITOR_TIMEOUT_MS = 300_000
# A test session provisions thousands of short-lived tenants on one server: far past the
# production budget of ~10,000 namespaces per cluster, which is not what tests measure
# (tests of the budget connect with their own).
TEST_NAMESPACE_BUDGET = 10_000_000


def new_prefix() -> str:
    """A database prefix no other test uses: each test gets its own databases."""
    return "t" + uuid.uuid4().hex[:12]


def new_tenant_id(stem: str = "t") -> str:
    """A fresh, valid tenant id."""
    return f"{stem}-{uuid.uuid4().hex[:10]}"


def patient_uri(uri: str) -> str:
    """`uri` whose driver monitor waits out a busy server instead of giving up on it.

    The monitor times its checks with the connect timeout (20 s by default); a check that
    times out marks the server unknown and cancels every operation in flight. The embedded
    server answers in arrival order, so under 50 concurrent tasks on a small CI machine its
    answer to the monitor can queue for more than a minute (seen in CI). Longer timeouts
    already in `uri` are kept.
    """
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for option, least in (
        ("connectTimeoutMS", TEST_MONITOR_TIMEOUT_MS),
        ("serverSelectionTimeoutMS", TEST_OPERATION_TIMEOUT_MS),
    ):
        given = query.get(option, "")
        if not given.isdigit() or int(given) < least:
            query[option] = str(least)
    return urlunsplit(parts._replace(query=urlencode(query)))


async def connect_for_tests(
    uri: str,
    *,
    documents: Iterable[type[BaseDocument]] | None = None,
    database_prefix: str | None = None,
    encryption: EncryptionOptions | None = None,
) -> DataLayer:
    """A layer with the tests' timeouts, on fresh databases (a new prefix) by default.

    Pass another layer's `database_prefix` for a second layer on its databases: what a second
    process of the same application would have.
    """
    return await connect(
        patient_uri(uri),
        database_prefix=new_prefix() if database_prefix is None else database_prefix,
        documents=documents,
        operation_timeout_ms=TEST_OPERATION_TIMEOUT_MS,
        encryption=encryption,
        namespace_budget=TEST_NAMESPACE_BUDGET,
    )


async def drop_prefix_databases(layer: DataLayer) -> list[str]:
    """Drop every database of the layer's prefix; returns their names."""
    dropped = []
    for cluster in layer.clusters.names:
        client = layer.clusters.client(cluster)
        names = [
            name
            for name in await client.list_database_names()
            if name.startswith(layer.prefix + "_")
        ]
        for name in names:
            await client.drop_database(name)
            layer.forget_ensured(name, cluster=cluster)
        dropped += names
    return dropped


@asynccontextmanager
async def layer_for_tests(
    uri: str, *, documents: Iterable[type[BaseDocument]] | None = None
) -> AsyncIterator[DataLayer]:
    """A layer of its own on fresh databases, dropped and closed on the way out."""
    layer = await connect_for_tests(uri, documents=documents)
    try:
        yield layer
    finally:
        await drop_prefix_databases(layer)
        await layer.close()
