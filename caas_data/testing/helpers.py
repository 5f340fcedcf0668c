"""Small helpers for tests and demos: unique names and clean-up."""

from __future__ import annotations

import uuid

from caas_data.engine.layer import DataLayer

__all__ = ["drop_prefix_databases", "new_prefix", "new_tenant_id"]


def new_prefix() -> str:
    """A database prefix no other test uses: each test gets its own databases."""
    return "t" + uuid.uuid4().hex[:12]


def new_tenant_id(stem: str = "t") -> str:
    """A fresh, valid tenant id."""
    return f"{stem}-{uuid.uuid4().hex[:10]}"


async def drop_prefix_databases(layer: DataLayer) -> list[str]:
    """Drop every database of the layer's prefix; returns their names."""
    names = [
        name
        for name in await layer.client.list_database_names()
        if name.startswith(layer.prefix + "_")
    ]
    for name in names:
        await layer.client.drop_database(name)
    return names
