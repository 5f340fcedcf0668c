"""Aggregation pipelines that try to join, union, walk or write into another tenant's data.

Each must raise a `CaasDataError` (never a TypeError/AttributeError) or return only the
attacker's data. Every tenant has a user whose `external_id` is "graph-root", so a
`$graphLookup` on it crosses tenants wherever the server ignores `restrictSearchWithMatch`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from caas_data.saas import Message, User

from .conftest import Seeded, World, attack

PipelineBuilder = Callable[[str, Seeded], list[Any]]

_WALK = {
    "from": "users",
    "startWith": "$external_id",
    "connectFromField": "external_id",
    "connectToField": "external_id",
    "as": "walk",
}
_ROOT = {"$match": {"external_id": "graph-root"}}

PIPELINES: dict[str, PipelineBuilder] = {
    # joins into the victim's rows of the same logical collection
    "lookup_sub_match_victim": lambda me, v: [
        {"$lookup": {"from": "users", "pipeline": [{"$match": {"tenant_id": v.tenant_id}}],
                     "as": "x"}}
    ],
    "lookup_local_foreign": lambda me, v: [
        _ROOT,
        {"$lookup": {"from": "users", "localField": "external_id",
                     "foreignField": "external_id", "as": "x"}},
    ],
    "lookup_expr_not_me": lambda me, v: [
        {"$lookup": {"from": "messages", "pipeline": [
            {"$match": {"$expr": {"$ne": ["$tenant_id", me]}}}], "as": "x"}}
    ],
    "lookup_victim_ids": lambda me, v: [
        {"$lookup": {"from": "messages", "pipeline": [
            {"$match": {"_id": {"$in": v.message_ids}}}], "as": "x"}}
    ],
    "lookup_db_coll": lambda me, v: [
        {"$lookup": {"from": {"db": f"x_{v.tenant_id}", "coll": "users"}, "pipeline": [],
                     "as": "x"}}
    ],
    "lookup_pro_name": lambda me, v: [
        {"$lookup": {"from": f"{v.tenant_id}_users", "pipeline": [], "as": "x"}}
    ],
    "lookup_platform_directory": lambda me, v: [
        {"$lookup": {"from": "saas_clients", "pipeline": [], "as": "x"}}
    ],
    "lookup_api_keys": lambda me, v: [
        {"$lookup": {"from": "api_keys", "pipeline": [], "as": "x"}}
    ],
    "lookup_nested_union_platform": lambda me, v: [
        {"$lookup": {"from": "users", "pipeline": [{"$unionWith": "platform_admins"}],
                     "as": "x"}}
    ],
    "union_sub_match_victim": lambda me, v: [
        {"$unionWith": {"coll": "users", "pipeline": [{"$match": {"tenant_id": v.tenant_id}}]}}
    ],
    "union_string": lambda me, v: [{"$unionWith": "messages"}],
    "union_directory": lambda me, v: [{"$unionWith": "saas_clients"}],
    "union_system": lambda me, v: [{"$unionWith": "system.views"}],
    "union_nested_union": lambda me, v: [
        {"$unionWith": {"coll": "users", "pipeline": [
            {"$unionWith": {"coll": "users", "pipeline": [{"$match": {"tenant_id": {
                "$ne": me}}}]}}]}}
    ],
    # graph walks
    "graph_no_restrict": lambda me, v: [_ROOT, {"$graphLookup": dict(_WALK)}],
    "graph_restrict_victim": lambda me, v: [
        _ROOT, {"$graphLookup": {**_WALK, "restrictSearchWithMatch": {"tenant_id": v.tenant_id}}}
    ],
    "graph_restrict_or": lambda me, v: [
        _ROOT,
        {"$graphLookup": {**_WALK, "restrictSearchWithMatch": {
            "$or": [{"tenant_id": {"$exists": True}}, {"external_id": "graph-root"}]}}},
    ],
    "graph_restrict_expr": lambda me, v: [
        _ROOT,
        {"$graphLookup": {**_WALK, "restrictSearchWithMatch": {
            "$expr": {"$ne": ["$tenant_id", me]}}}},
    ],
    "graph_depth": lambda me, v: [_ROOT, {"$graphLookup": {**_WALK, "maxDepth": 3,
                                                          "depthField": "d"}}],
    "graph_in_facet": lambda me, v: [
        _ROOT, {"$facet": {"walk": [{"$graphLookup": dict(_WALK)}]}}
    ],
    "graph_in_lookup": lambda me, v: [
        _ROOT,
        {"$lookup": {"from": "users", "pipeline": [_ROOT, {"$graphLookup": dict(_WALK)}],
                     "as": "x"}},
    ],
    # $facet wrapping the joins
    "facet_lookup_victim": lambda me, v: [
        {"$facet": {"a": [{"$lookup": {"from": "users", "pipeline": [
            {"$match": {"tenant_id": v.tenant_id}}], "as": "x"}}]}}
    ],
    "facet_union": lambda me, v: [{"$facet": {"a": [{"$unionWith": "saas_clients"}]}}],
    "facet_match_victim": lambda me, v: [
        {"$facet": {"a": [{"$match": {"tenant_id": v.tenant_id}}]}}
    ],
    "facet_out": lambda me, v: [{"$facet": {"a": [{"$out": "stolen"}]}}],
    # writes and server introspection
    "out": lambda me, v: [{"$out": "stolen"}],
    "out_db": lambda me, v: [{"$out": {"db": f"x_{v.tenant_id}", "coll": "users"}}],
    "merge": lambda me, v: [{"$merge": {"into": "users", "whenMatched": "replace"}}],
    "merge_in_lookup": lambda me, v: [
        {"$lookup": {"from": "users", "pipeline": [{"$merge": "stolen"}], "as": "x"}}
    ],
    "documents": lambda me, v: [{"$documents": [{"tenant_id": v.tenant_id}]}],
    "coll_stats": lambda me, v: [{"$collStats": {"count": {}}}],
    "current_op": lambda me, v: [{"$currentOp": {"allUsers": True}}],
    "index_stats": lambda me, v: [{"$indexStats": {}}],
    "list_sessions": lambda me, v: [{"$listSessions": {}}],
    "change_stream_stage": lambda me, v: [{"$changeStream": {}}],
    "search": lambda me, v: [{"$search": {"text": {"query": "x", "path": "display_name"}}}],
    "unknown_stage": lambda me, v: [{"$stealEverything": {}}],
    "late_match_victim": lambda me, v: [
        {"$sort": {"_id": 1}}, {"$match": {"tenant_id": v.tenant_id}}
    ],
    "late_match_nor_me": lambda me, v: [{"$skip": 0}, {"$match": {"$nor": [{"tenant_id": me}]}}],
    "geo_near_victim": lambda me, v: [
        {"$geoNear": {"near": [0, 0], "distanceField": "d", "query": {"tenant_id": v.tenant_id}}}
    ],
    # malformed bodies: a CaasDataError, never a TypeError/AttributeError
    "stage_not_mapping": lambda me, v: ["$match"],
    "stage_list": lambda me, v: [[{"$match": {}}]],
    "stage_two_keys": lambda me, v: [{"$match": {}, "$unionWith": "saas_clients"}],
    "pipeline_not_list": lambda me, v: {"$match": {}},  # type: ignore[return-value]
    "match_list_body": lambda me, v: [{"$match": [{"tenant_id": v.tenant_id}]}],
    "lookup_list_body": lambda me, v: [{"$lookup": ["users"]}],
    "lookup_pipeline_dict": lambda me, v: [
        {"$lookup": {"from": "users", "pipeline": {"$match": {}}, "as": "x"}}
    ],
    "union_int_body": lambda me, v: [{"$unionWith": 5}],
    "graph_string_body": lambda me, v: [{"$graphLookup": "users"}],
    "graph_restrict_list": lambda me, v: [
        {"$graphLookup": {**_WALK, "restrictSearchWithMatch": [{"tenant_id": v.tenant_id}]}}
    ],
    "facet_int_body": lambda me, v: [{"$facet": {"a": 5}}],
    "facet_list_body": lambda me, v: [{"$facet": [[{"$match": {}}]]}],
    "facet_string_body": lambda me, v: [{"$facet": {"a": "$unionWith"}}],
}  # fmt: skip


async def _no_stolen_collection(world: World, attacker: Seeded) -> None:
    layer = world.layer
    for database in (f"{layer.prefix}_shared", f"{layer.prefix}_{attacker.tenant_id}"):
        names = await layer.client[database].list_collection_names()
        assert not [n for n in names if n.endswith("stolen")], f"{database} got a new collection"


@pytest.mark.parametrize("case", list(PIPELINES))
async def test_pipeline_reads_and_writes_only_the_tenant(
    world: World, attacker: Seeded, case: str
) -> None:
    pipeline = PIPELINES[case](attacker.tenant_id, world.shared_victim)
    await attack(world, attacker.tenant_id, lambda: User.aggregate(pipeline).to_list(), case)
    await _no_stolen_collection(world, attacker)


@pytest.mark.parametrize(
    "case", ["lookup_sub_match_victim", "union_string", "graph_no_restrict", "facet_int_body"]
)
async def test_guarded_aggregate_of_messages(world: World, attacker: Seeded, case: str) -> None:
    pipeline = PIPELINES[case](attacker.tenant_id, world.shared_victim)
    pipeline = [
        {**stage, "$graphLookup": {**stage["$graphLookup"], "from": "messages",
                                   "startWith": "$conversation_id",
                                   "connectFromField": "conversation_id",
                                   "connectToField": "conversation_id"}}
        if isinstance(stage, dict) and "$graphLookup" in stage else stage
        for stage in pipeline if stage is not _ROOT
    ]  # fmt: skip

    async def run() -> Any:
        cursor = await world.layer.collection(Message).aggregate(pipeline)
        return await cursor.to_list()

    await attack(world, attacker.tenant_id, run, f"messages {case}")
