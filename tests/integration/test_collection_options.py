"""Collection options are asked for, and a server that refuses them gets a plain collection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest_asyncio
from pymongo import ASCENDING, IndexModel

from caas_data import AppendOnlyMixin, Area, BaseDocument, CreatedAtMixin, DataLayer, TenantMixin
from caas_data.engine.collections import collection_options
from caas_data.testing import ServerHandle, connect_for_tests, drop_prefix_databases


class Reading(AppendOnlyMixin, TenantMixin, CreatedAtMixin, BaseDocument):
    caas_area: ClassVar[Area] = Area.ANALYTICS
    caas_collection_options: ClassVar[dict[str, Any]] = {
        "timeseries": {"timeField": "created_at", "metaField": "tenant_id"}
    }
    value: float

    class Settings:
        name = "test_readings"
        indexes = [IndexModel([("tenant_id", ASCENDING), ("created_at", ASCENDING)])]


class Impossible(AppendOnlyMixin, TenantMixin, CreatedAtMixin, BaseDocument):
    caas_area: ClassVar[Area] = Area.ANALYTICS
    caas_collection_options: ClassVar[dict[str, Any]] = {"noSuchOption": True}

    class Settings:
        name = "test_impossible"
        indexes = [IndexModel([("tenant_id", ASCENDING)])]


@pytest_asyncio.fixture
async def layer(caas_server: ServerHandle) -> AsyncIterator[DataLayer]:
    layer = await connect_for_tests(caas_server.uri, documents=[Reading, Impossible])
    try:
        yield layer
    finally:
        await drop_prefix_databases(layer)
        await layer.close()


async def test_time_series_is_used_where_the_server_has_it(layer: DataLayer) -> None:
    database = layer.client[layer.database_name(Area.ANALYTICS)]
    applied = await collection_options(database, "test_readings")
    assert applied is not None
    # Both MongoDB 7/8 and the embedded server create time-series collections.
    assert applied.get("timeseries", {}).get("timeField") == "created_at"


async def test_refused_options_fall_back_to_a_plain_collection(layer: DataLayer) -> None:
    database = layer.client[layer.database_name(Area.ANALYTICS)]
    assert "test_impossible" in await database.list_collection_names()
    applied = await collection_options(database, "test_impossible")
    assert applied is not None
    assert "noSuchOption" not in applied
    info = await database["test_impossible"].index_information()
    assert any(spec["key"] == [("tenant_id", 1)] for spec in info.values())
