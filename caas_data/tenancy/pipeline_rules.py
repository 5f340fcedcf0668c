"""The tenant guard's rules for aggregation pipelines: every stage and join stays in the tenant.

A pipeline gets the tenant filter at its head; a join (`$lookup`, `$unionWith`, `$graphLookup`)
names a collection by the name Beanie or the user gave it, which `resolve` turns into the
scope's own physical collection and its rules, or refuses. Stages these rules do not know
are refused, never passed through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from caas_data.errors import UnsafeOperation
from caas_data.tenancy.rules import (
    DELETED_FIELD,
    TENANT_FIELD,
    CollectionRules,
    check_tenant_conditions,
    guard_filter,
    snapshot_filter,
)
from caas_data.tenancy.snapshots import (
    MAX_DEPTH,
    plain_list,
    plain_mapping,
    plain_str,
    single_stage,
)

__all__ = ["LookupTarget", "Resolver", "guard_pipeline"]

# Stages that only reshape documents already filtered upstream.
_PASSTHROUGH_STAGES = frozenset(
    {
        "$project", "$addFields", "$set", "$unset", "$sort", "$limit", "$skip", "$group",
        "$unwind", "$count", "$sortByCount", "$bucket", "$bucketAuto", "$replaceRoot",
        "$replaceWith", "$sample", "$redact", "$setWindowFields", "$densify", "$fill",
    }
)  # fmt: skip
_REFUSED_STAGES = {
    "$out": "writes outside the tenant's collections",
    "$merge": "writes outside the tenant's collections",
}


@dataclass(frozen=True, slots=True)
class LookupTarget:
    """A collection a pipeline may join: its physical name and the rules that filter it."""

    physical_name: str
    rules: CollectionRules


Resolver = Callable[[str], LookupTarget]
"""A collection name as a pipeline gives it -> the scope's collection (or raises)."""


def _target(resolve: Resolver, name: Any, stage: str) -> LookupTarget:
    text = plain_str(name)
    if text is None:
        raise UnsafeOperation(f"{stage} must name a collection of this layer, got {name!r}")
    return resolve(text)


def _joined_pipeline(
    sub: Any, target: LookupTarget, resolve: Resolver, stage: str, depth: int
) -> list[dict[str, Any]]:
    stages = [] if sub is None else plain_list(sub, f"{stage} pipeline")
    rewritten = _rewrite_stages(stages, resolve, depth + 1)
    own = guard_filter(None, target.rules)
    return ([{"$match": own}] if own else []) + rewritten


def _rewrite_lookup(body: Any, resolve: Resolver, depth: int) -> dict[str, Any]:
    new = plain_mapping(body, "$lookup")
    target = _target(resolve, new.get("from"), "$lookup")
    new["from"] = target.physical_name
    pipeline = _joined_pipeline(new.get("pipeline"), target, resolve, "$lookup", depth)
    if pipeline or "pipeline" in new:
        new["pipeline"] = pipeline
    return new


def _rewrite_union(body: Any, resolve: Resolver, depth: int) -> dict[str, Any]:
    new: dict[str, Any] = (
        {"coll": body} if isinstance(body, str) else plain_mapping(body, "$unionWith")
    )
    target = _target(resolve, new.get("coll"), "$unionWith")
    new["coll"] = target.physical_name
    new["pipeline"] = _joined_pipeline(new.get("pipeline"), target, resolve, "$unionWith", depth)
    return new


def _rewrite_graph_lookup(body: Any, resolve: Resolver) -> list[dict[str, Any]]:
    """The stage, and a `$set` that keeps only the target's allowed documents in its output.

    `restrictSearchWithMatch` limits the walk on MongoDB, but a server that ignores the option
    would return every tenant's documents: the filter after the stage holds either way.
    """
    new = plain_mapping(body, "$graphLookup")
    target = _target(resolve, new.get("from"), "$graphLookup")
    output = plain_str(new.get("as"))
    if not output or output.startswith("$"):
        raise UnsafeOperation("$graphLookup needs an output field name in `as`")
    new["from"] = target.physical_name
    restrict = guard_filter(
        None if new.get("restrictSearchWithMatch") is None else new["restrictSearchWithMatch"],
        target.rules,
    )
    if restrict:
        new["restrictSearchWithMatch"] = restrict
    stages: list[dict[str, Any]] = [{"$graphLookup": new}]
    conditions: list[Any] = []
    if target.rules.filters_tenant:
        conditions.append({"$eq": ["$$this." + TENANT_FIELD, target.rules.tenant_id]})
    if target.rules.soft_delete:
        conditions.append({"$eq": [{"$ifNull": ["$$this." + DELETED_FIELD, None]}, None]})
    if conditions:
        keep = {"$filter": {"input": "$" + output, "cond": {"$and": conditions}}}
        stages.append({"$set": {output: keep}})
    return stages


def _rewrite_facet(body: Any, resolve: Resolver, depth: int) -> dict[str, Any]:
    facets = plain_mapping(body, "$facet")
    return {
        name: _rewrite_stages(plain_list(sub, f"$facet {name!r}"), resolve, depth + 1)
        for name, sub in facets.items()
    }


def _rewrite_stages(stages: list[Any], resolve: Resolver, depth: int = 0) -> list[dict[str, Any]]:
    if depth > MAX_DEPTH:
        raise UnsafeOperation("pipeline nested too deeply")
    result: list[dict[str, Any]] = []
    for stage in stages:
        name, body = single_stage(stage)
        if name in _REFUSED_STAGES:
            raise UnsafeOperation(f"{name} is refused: it {_REFUSED_STAGES[name]}")
        if name == "$lookup":
            result.append({name: _rewrite_lookup(body, resolve, depth)})
        elif name == "$unionWith":
            result.append({name: _rewrite_union(body, resolve, depth)})
        elif name == "$graphLookup":
            result.extend(_rewrite_graph_lookup(body, resolve))
        elif name == "$facet":
            result.append({name: _rewrite_facet(body, resolve, depth)})
        elif name == "$match":
            result.append({name: snapshot_filter(body)})
        elif name in _PASSTHROUGH_STAGES:
            result.append({name: body})
        else:
            raise UnsafeOperation(f"pipeline stage {name} is not supported by the tenant guard")
    return result


def guard_pipeline(
    pipeline: Sequence[Any],
    rules: CollectionRules,
    resolve: Resolver,
    *,
    include_deleted: bool = False,
) -> list[dict[str, Any]]:
    """A pipeline that reads only the scope's tenant, in this and every joined collection.

    The tenant filter is merged into a leading `$match` (so `$text` stays first) or into a
    leading `$geoNear`'s query; otherwise a `$match` is put in front.
    """
    stages = plain_list(pipeline, "a pipeline")
    head: dict[str, Any] | None = None
    if stages:
        name, body = single_stage(stages[0])
        if name == "$match":
            head = {"$match": guard_filter(body, rules, include_deleted=include_deleted)}
            stages = stages[1:]
        elif name == "$geoNear":
            geo = plain_mapping(body, "$geoNear")
            query = geo.get("query")
            geo["query"] = guard_filter(query, rules, include_deleted=include_deleted)
            head = {"$geoNear": geo}
            stages = stages[1:]
    if head is None:
        own = guard_filter(None, rules, include_deleted=include_deleted)
        head = {"$match": own} if own else None
    rewritten = _rewrite_stages(stages, resolve)
    for stage in rewritten:
        match = stage.get("$match")
        if match is not None and rules.filters_tenant:
            check_tenant_conditions(match, rules)
    return ([head] if head else []) + rewritten
