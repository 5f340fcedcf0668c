"""The suite catches leaks: with the guard's tenant filter and stamping switched off (in this
test only), most read and write attacks must fail their assertions.

It runs on databases of its own (`caas_isolated`): with the guard off, writes reach every
tenant of the collections they touch.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import caas_data.tenancy.rules
from caas_data import DataLayer, tenant_scope
from caas_data.saas import User

from .attacks import FILTERS
from .conftest import World, attack, build_world
from .test_filters import READ_PATHS
from .test_pipelines import PIPELINES
from .test_writes import BULK, INSERTS


def _guard_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tenant filter on reads and writes, no tenant stamped or checked on new documents."""
    monkeypatch.setattr(
        caas_data.tenancy.rules.CollectionRules, "filters_tenant", property(lambda self: False)
    )
    monkeypatch.setattr(caas_data.tenancy.rules, "_stamp_tenant", lambda *args, **kwargs: None)


READS = [
    "tenant_eq", "tenant_ne_me", "tenant_in", "tenant_nin", "or_victim", "nor_me",
    "and_victim", "expr_tenant", "regex_tenant", "lookalike_value", "victim_id",
    "victim_ids_in", "or_victim_id",
]  # fmt: skip
JOINS = ["lookup_sub_match_victim", "union_sub_match_victim", "facet_lookup_victim"]
INSERTED = ["insert_victim", "insert_many_mixed", "beanie_insert", "repo_create_victim"]
# Deletes last: once the victim's rows are gone, later reads would have nothing to leak.
BULKS = ["update_victim_filter", "update_many_victim_ids", "insert_victim", "mixed_batch",
         "delete_one_victim_id", "delete_victim_ids", "delete_victim_filter"]  # fmt: skip


def _cores(world: World) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
    layer, me, victim = world.layer, world.attackers["shared"].tenant_id, world.shared_victim
    cores: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
    for path in ("find", "beanie_find", "repo_count"):
        for shape in READS:
            query = FILTERS[shape](me, victim)
            cores.append((f"{path}({shape})", lambda q=query, p=path: READ_PATHS[p](layer, q)))
    for case in JOINS:
        pipeline = PIPELINES[case](me, victim)
        cores.append((case, lambda p=pipeline: User.aggregate(p).to_list()))
    for case in INSERTED:
        cores.append((f"insert {case}", _write(INSERTS[case], layer, me, victim)))
    for case in BULKS:
        cores.append((f"bulk {case}", _write(BULK[case], layer, me, victim)))
    return cores


def _write(write: Any, layer: DataLayer, me: str, victim: Any) -> Callable[[], Awaitable[Any]]:
    return lambda: write(layer, me, victim, f"meta-{uuid.uuid4().hex[:8]}")


@pytest.mark.caas_isolated
async def test_suite_catches_leaks_with_the_guard_off(
    caas_layer: DataLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await build_world(caas_layer, ["shared"], ["shared"])
    me, victim = world.attackers["shared"].tenant_id, world.shared_victim.tenant_id
    _guard_off(monkeypatch)
    # The switch really is off: the victim's rows are read, and a row is stored under it.
    async with tenant_scope(me, layer=caas_layer):
        seen = {d["tenant_id"] for d in await caas_layer.collection(User).find({}).to_list()}
        await caas_layer.collection(User).insert_one(
            {"external_id": "meta-probe", "display_name": "probe", "tenant_id": victim}
        )
    assert victim in seen, "the switch does not turn the tenant filter off"
    probe = await caas_layer.client[f"{caas_layer.prefix}_shared"]["users"].find_one(
        {"external_id": "meta-probe"}
    )
    assert probe is not None and probe["tenant_id"] == victim, "stamping is still on"

    cores = _cores(world)
    assert len(cores) >= 20
    caught, missed = [], []
    for name, core in cores:
        try:
            await attack(world, me, core, name)
        except AssertionError:
            caught.append(name)
        else:
            missed.append(name)
    assert len(caught) >= 0.75 * len(cores), (
        f"with the guard off only {len(caught)}/{len(cores)} attacks were caught; missed: {missed}"
    )
