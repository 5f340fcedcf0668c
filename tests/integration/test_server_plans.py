"""How the server plans a tenant's read by id, and a limit of the embedded server that shows.

The guard puts `tenant_id` beside `_id` at the top level of the filter. MongoDB 7/8 plan that
on the `_id` index. The embedded server (SecantusDB) plans any `_id` equality that has another
field beside it as a collection scan, at the top level as inside `$and` (measured: 20,000
documents examined for one read, ~0.25 ms at that size, growing with the collection). Reads
stay correct there; only their cost differs. The layer does not build on it either way.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from caas_data import DataLayer, tenant_scope
from caas_data.documents.saas.users import User
from caas_data.saas import UserRepository
from caas_data.testing import ServerHandle


def _stages(plan: dict[str, Any]) -> list[str]:
    found, stage = [], plan
    while stage:
        found.append(stage["stage"])
        stage = stage.get("inputStage") or (stage.get("inputStages") or [None])[0]
    return found


@pytest.mark.parametrize("model", ["shared", "pro"])
async def test_a_read_by_id_is_planned_on_the_id_index_except_on_the_embedded_server(
    caas_layer: DataLayer, caas_server: ServerHandle, model_tenant: str, model: str
) -> None:
    async with tenant_scope(model_tenant, layer=caas_layer):
        users = await caas_layer.repo(UserRepository).create_many(
            [{"external_id": f"plan{i}", "display_name": f"P {i}"} for i in range(3)]
        )
        plan = await caas_layer.collection(User).find({"_id": users[1].id}).explain()
        assert await caas_layer.repo(UserRepository).get(users[1].id) == users[1]
    sent = plan["queryPlanner"].get("parsedQuery") or plan["command"]["filter"]
    assert model_tenant in repr(sent), "the guarded filter carries the tenant"
    stages = _stages(plan["queryPlanner"]["winningPlan"])
    if caas_server.kind == "embedded":
        assert stages == ["COLLSCAN"], "the embedded server now uses an index: update the README"
    else:
        assert "IXSCAN" in stages and "COLLSCAN" not in stages


def test_the_pool_drops_a_connection_before_the_embedded_server_closes_it(
    caas_server: ServerHandle,
) -> None:
    """The embedded server closes a connection idle for 300 s (no flag changes it)."""
    if caas_server.kind != "embedded":
        pytest.skip("a limit of the embedded server only")
    options = dict(parse_qsl(urlsplit(caas_server.uri).query))
    assert 0 < int(options["maxIdleTimeMS"]) < 300_000
