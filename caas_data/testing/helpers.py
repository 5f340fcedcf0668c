"""Small helpers for tests and demos: unique names and clean-up."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from caas_data.documents.base import BaseDocument
from caas_data.engine.layer import DataLayer, connect

__all__ = [
    "TEST_OPERATION_TIMEOUT_MS",
    "connect_for_tests",
    "drop_prefix_databases",
    "new_prefix",
    "new_tenant_id",
    "patient_uri",
]

# The embedded server is slow and CI machines are small: give operations a minute, not 10 s.
TEST_OPERATION_TIMEOUT_MS = 60_000


def new_prefix() -> str:
    """A database prefix no other test uses: each test gets its own databases."""
    return "t" + uuid.uuid4().hex[:12]


def new_tenant_id(stem: str = "t") -> str:
    """A fresh, valid tenant id."""
    return f"{stem}-{uuid.uuid4().hex[:10]}"


def patient_uri(uri: str) -> str:
    """`uri` with a connect timeout as long as the operation timeout.

    The driver's monitor checks the server with the connect timeout (20 s by default); a
    check that times out marks the server unknown and cancels every operation in flight. A
    busy CI machine can pause the embedded server longer than that, so tests wait instead.
    """
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("connectTimeoutMS", str(TEST_OPERATION_TIMEOUT_MS))
    query.setdefault("serverSelectionTimeoutMS", str(TEST_OPERATION_TIMEOUT_MS))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def connect_for_tests(
    uri: str, *, documents: Iterable[type[BaseDocument]] | None = None
) -> DataLayer:
    """A layer on fresh databases (a new prefix), with the test operation timeout."""
    return await connect(
        patient_uri(uri),
        database_prefix=new_prefix(),
        documents=documents,
        operation_timeout_ms=TEST_OPERATION_TIMEOUT_MS,
    )


async def drop_prefix_databases(layer: DataLayer) -> list[str]:
    """Drop every database of the layer's prefix; returns their names."""
    names = [
        name
        for name in await layer.client.list_database_names()
        if name.startswith(layer.prefix + "_")
    ]
    for name in names:
        await layer.client.drop_database(name)
        layer.forget_ensured(name)
    return names
