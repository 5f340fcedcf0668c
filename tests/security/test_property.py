"""Hypothesis generates filters, update documents and pipelines against a two-tenant world.

Operators nest at random depth; field names include `tenant_id`, `__v`, `deleted_at` and
`$`-keys; values include both tenants' ids and a look-alike. Every example must pass the
suite's two assertions. The examples come from the loaded profile (25 in CI,
`--hypothesis-profile=deep` for more); each test runs on a layer of its own, in its own loop,
as the other property tests do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from caas_data import DataLayer
from caas_data.saas import User
from caas_data.testing import ServerHandle
from caas_data.testing.helpers import connect_for_tests, drop_prefix_databases

from .attacks import LookAlike
from .conftest import World, attack, build_world

FIELDS = ["tenant_id", "tenant_id.x", "__v", "deleted_at", "deleted_by", "created_at",
          "schema_version", "display_name", "external_id", "_id", "a.b"]  # fmt: skip
QUERY_OPERATORS = ["$eq", "$ne", "$in", "$nin", "$gt", "$lt", "$exists", "$regex", "$not",
                   "$and", "$or", "$nor", "$expr", "$elemMatch", "$where", "$type"]  # fmt: skip
UPDATE_OPERATORS = ["$set", "$unset", "$inc", "$min", "$max", "$rename", "$currentDate",
                    "$setOnInsert", "$push", "$mul", "$bogus"]  # fmt: skip
STAGES = ["$match", "$project", "$set", "$unset", "$lookup", "$unionWith", "$graphLookup",
          "$facet", "$group", "$sort", "$limit", "$out", "$merge", "$documents",
          "$replaceWith", "$unwind", "$collStats", "$whatever"]  # fmt: skip
COLLECTIONS = ["users", "messages", "conversations", "saas_clients", "api_keys", "stolen"]


def _strategies(world: World) -> dict[str, st.SearchStrategy[Any]]:
    me, victim = world.attackers["shared"].tenant_id, world.shared_victim
    scalars = st.one_of(
        st.sampled_from([me, victim.tenant_id, LookAlike(victim.tenant_id), f"${'tenant_id'}",
                         "graph-root", *victim.user_ids]),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.text(max_size=4),
        st.none(),
        st.booleans(),
    )  # fmt: skip
    keys = st.one_of(st.sampled_from(FIELDS), st.sampled_from(QUERY_OPERATORS))
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)
        ),
        max_leaves=8,
    )
    filters = st.dictionaries(keys, values, max_size=3)
    operator_updates = st.dictionaries(
        st.sampled_from(UPDATE_OPERATORS),
        st.dictionaries(st.sampled_from(FIELDS), values, min_size=1, max_size=2),
        min_size=1,
        max_size=2,
    )
    pipeline_updates = st.lists(
        st.dictionaries(st.sampled_from(["$set", "$unset", "$addFields", "$project"]),
                        st.one_of(values, st.dictionaries(st.sampled_from(FIELDS), values,
                                                          max_size=2)),
                        min_size=1, max_size=1),
        min_size=1, max_size=3,
    )  # fmt: skip
    joins = st.fixed_dictionaries(
        {"from": st.sampled_from(COLLECTIONS), "as": st.just("x")},
        optional={
            "pipeline": st.lists(st.dictionaries(st.just("$match"), filters, min_size=1),
                                 max_size=2),
            "coll": st.sampled_from(COLLECTIONS),
            "startWith": st.just("$external_id"),
            "connectFromField": st.just("external_id"),
            "connectToField": st.just("external_id"),
            "restrictSearchWithMatch": filters,
            "localField": st.just("external_id"),
            "foreignField": st.just("external_id"),
        },
    )  # fmt: skip
    stages = st.recursive(
        st.dictionaries(st.sampled_from(STAGES), st.one_of(joins, filters, values),
                        min_size=1, max_size=1),
        lambda inner: st.dictionaries(st.just("$facet"),
                                      st.dictionaries(st.just("f"), st.lists(inner, max_size=2),
                                                      min_size=1),
                                      min_size=1),
        max_leaves=4,
    )  # fmt: skip
    return {
        "filters": filters,
        "updates": st.tuples(filters, st.one_of(operator_updates, pipeline_updates)),
        "pipelines": st.lists(stages, max_size=4),
    }


def _run(
    server: ServerHandle, kind: str, action: Callable[[DataLayer, Any], Awaitable[Any]]
) -> None:
    """Draw `kind` examples and run `action` on each as the attacker, asserting (a) and (b)."""
    loop = asyncio.new_event_loop()
    try:
        layer = loop.run_until_complete(connect_for_tests(server.uri))
        try:
            world = loop.run_until_complete(build_world(layer, ["shared"], ["shared"]))
            me = world.attackers["shared"].tenant_id

            @settings(settings(), database=None)
            @given(example=_strategies(world)[kind])
            def check(example: Any) -> None:
                loop.run_until_complete(
                    attack(world, me, lambda: action(layer, example), f"{kind}: {example!r:.200}")
                )

            check()
        finally:
            loop.run_until_complete(drop_prefix_databases(layer))
            loop.run_until_complete(layer.close())
    finally:
        loop.close()


async def _read(layer: DataLayer, query: Any) -> Any:
    return [
        await layer.collection(User).find(query).to_list(),
        await User.find(query).to_list(),
        await layer.collection(User).distinct("display_name", query),
    ]


async def _write(layer: DataLayer, example: Any) -> Any:
    query, update = example
    return await layer.collection(User).update_many(query, update)


async def _aggregate(layer: DataLayer, pipeline: Any) -> Any:
    return await User.aggregate(pipeline).to_list()


def test_generated_filters(caas_server: ServerHandle) -> None:
    _run(caas_server, "filters", _read)


def test_generated_updates(caas_server: ServerHandle) -> None:
    _run(caas_server, "updates", _write)


def test_generated_pipelines(caas_server: ServerHandle) -> None:
    _run(caas_server, "pipelines", _aggregate)
