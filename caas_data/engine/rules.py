"""The tenant guard's rules as pure functions: filters, updates, new documents, pipelines.

They take what a driver call would send and return what it must send instead, or raise.
`tenant_id` is merged into a filter at the top level (never by wrapping the filter in `$and`):
real MongoDB plans both the same, but some servers only use the `_id` index for a top-level
`_id`. Anything these rules do not understand is refused, never passed through.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from caas_data.errors import TenantMismatch, UnsafeOperation

__all__ = [
    "CollectionRules",
    "LookupTarget",
    "guard_filter",
    "guard_new_document",
    "guard_pipeline",
    "guard_replacement",
    "guard_update",
]

TENANT_FIELD = "tenant_id"
VERSION_FIELD = "__v"
DELETED_FIELD = "deleted_at"

_LOGICAL = ("$and", "$or", "$nor")
_UPDATE_OPERATORS = frozenset(
    {
        "$set", "$setOnInsert", "$unset", "$inc", "$mul", "$min", "$max", "$rename",
        "$currentDate", "$push", "$pull", "$pullAll", "$addToSet", "$pop", "$bit",
    }
)  # fmt: skip
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
_UPDATE_PIPELINE_STAGES = frozenset({"$set", "$addFields", "$unset"})


@dataclass(frozen=True, slots=True)
class CollectionRules:
    """What the guard enforces on one physical collection for one scope.

    `tenant_id` None means no tenant filter (platform data, or a system scope).
    """

    tenant_id: str | None
    versioned: bool = True
    timestamps: bool = True
    soft_delete: bool = False
    tenant_keyed: bool = True
    append_only: bool = False

    @property
    def filters_tenant(self) -> bool:
        """True when every read and write must carry `tenant_id`."""
        return self.tenant_keyed and self.tenant_id is not None


@dataclass(frozen=True, slots=True)
class LookupTarget:
    """A collection a pipeline may join: its physical name and the rules that filter it."""

    physical_name: str
    rules: CollectionRules


# -- filters ------------------------------------------------------------------------------


def _mismatch(rules: CollectionRules, what: str) -> TenantMismatch:
    return TenantMismatch(f"{what} names another tenant", tenant_id=rules.tenant_id)


def _condition_is_tenant(condition: Any, tenant_id: str) -> bool:
    if isinstance(condition, str):
        return condition == tenant_id
    if isinstance(condition, Mapping) and len(condition) == 1:
        ((op, value),) = condition.items()
        if op == "$eq":
            return bool(value == tenant_id)
        if op == "$in" and isinstance(value, Sequence) and not isinstance(value, str):
            return len(value) > 0 and all(v == tenant_id for v in value)
    return False


def _check_tenant_conditions(query: Mapping[str, Any], rules: CollectionRules) -> None:
    """Refuse any clause, at any logical depth, that names a tenant other than the scope's."""
    assert rules.tenant_id is not None
    for key, value in query.items():
        if key == TENANT_FIELD or key.startswith(TENANT_FIELD + "."):
            if not _condition_is_tenant(value, rules.tenant_id):
                raise _mismatch(rules, f"filter {{{key!r}: {value!r}}}")
        elif key in _LOGICAL and isinstance(value, Sequence):
            for clause in value:
                if isinstance(clause, Mapping):
                    _check_tenant_conditions(clause, rules)


def _mentions(query: Mapping[str, Any], field: str) -> bool:
    for key, value in query.items():
        if key == field:
            return True
        if (
            key in _LOGICAL
            and isinstance(value, Sequence)
            and any(isinstance(c, Mapping) and _mentions(c, field) for c in value)
        ):
            return True
    return False


def guard_filter(
    query: Mapping[str, Any] | None, rules: CollectionRules, *, include_deleted: bool = False
) -> dict[str, Any]:
    """The filter with the scope's tenant (and the live-documents rule) merged in."""
    if query is not None and not isinstance(query, Mapping):
        raise UnsafeOperation(f"a filter must be a mapping, got {type(query).__name__}")
    result: dict[str, Any] = {}
    if rules.filters_tenant:
        assert rules.tenant_id is not None
        if query:
            _check_tenant_conditions(query, rules)
        result[TENANT_FIELD] = rules.tenant_id
    if query:
        for key, value in query.items():
            if key != TENANT_FIELD or not rules.filters_tenant:
                result[key] = value
    if rules.soft_delete and not include_deleted and not _mentions(result, DELETED_FIELD):
        result[DELETED_FIELD] = None
    return result


# -- writes ------------------------------------------------------------------------------


def _stamp_tenant(document: dict[str, Any], rules: CollectionRules, what: str) -> None:
    if not rules.tenant_keyed:
        return
    given = document.get(TENANT_FIELD)
    if rules.tenant_id is None:
        if not isinstance(given, str) or not given:
            raise TenantMismatch(f"{what} in a system scope must carry its tenant_id")
        return
    if given is None:
        document[TENANT_FIELD] = rules.tenant_id
    elif given != rules.tenant_id:
        raise TenantMismatch(
            f"{what} belongs to tenant {given!r}, not to the scope's", tenant_id=rules.tenant_id
        )


def guard_new_document(
    document: Mapping[str, Any], rules: CollectionRules, *, now: datetime
) -> dict[str, Any]:
    """A document about to be inserted: tenant stamped, timestamps and version set."""
    if not isinstance(document, Mapping):
        raise UnsafeOperation(f"a document must be a mapping, got {type(document).__name__}")
    result = dict(document)
    _stamp_tenant(result, rules, "document")
    if rules.timestamps:
        result.setdefault("created_at", now)
        result.setdefault("updated_at", now)
    if rules.versioned:
        result.setdefault(VERSION_FIELD, 0)
    return result


def guard_replacement(
    query: Mapping[str, Any] | None,
    replacement: Mapping[str, Any],
    rules: CollectionRules,
    *,
    now: datetime,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A replacement, made conditional on the `__v` it carries and stored with `__v + 1`.

    `query` must already have passed `guard_filter`.
    """
    if not isinstance(replacement, Mapping):
        raise UnsafeOperation("a replacement must be a mapping")
    if any(str(k).startswith("$") for k in replacement):
        raise UnsafeOperation("a replacement must not contain update operators")
    new = dict(replacement)
    _stamp_tenant(new, rules, "replacement")
    query = dict(query or {})
    if rules.versioned:
        version = new.get(VERSION_FIELD)
        if not isinstance(version, int):
            raise UnsafeOperation(
                "a replacement of a versioned document must carry the `__v` it was read with"
            )
        query.setdefault(VERSION_FIELD, version)
        new[VERSION_FIELD] = version + 1
    if rules.timestamps:
        new["updated_at"] = now
        new.setdefault("created_at", now)
    return query, new


def _touched_fields(operator: str, arguments: Any) -> list[str]:
    if not isinstance(arguments, Mapping):
        raise UnsafeOperation(f"update operator {operator} needs a document of fields")
    fields = [str(k) for k in arguments]
    if operator == "$rename":
        fields += [str(v) for v in arguments.values()]
    return fields


def _touches_tenant(field: str) -> bool:
    return field == TENANT_FIELD or field.startswith(TENANT_FIELD + ".")


def _guard_update_document(
    update: Mapping[str, Any], rules: CollectionRules, *, now: datetime, upsert: bool
) -> dict[str, Any]:
    result: dict[str, dict[str, Any]] = {}
    touched: set[str] = set()
    for operator, arguments in update.items():
        if operator not in _UPDATE_OPERATORS:
            raise UnsafeOperation(f"unknown or unsupported update operator {operator!r}")
        for field in _touched_fields(operator, arguments):
            touched.add(field)
            if not (rules.tenant_keyed and _touches_tenant(field)):
                continue
            value = arguments.get(field) if operator in ("$set", "$setOnInsert") else None
            if rules.tenant_id is None or value != rules.tenant_id:
                raise TenantMismatch(
                    f"an update must not change tenant_id ({operator} {field})",
                    tenant_id=rules.tenant_id,
                )
        result[operator] = dict(arguments)
    if rules.versioned and VERSION_FIELD not in touched:
        result.setdefault("$inc", {})[VERSION_FIELD] = 1
    if rules.timestamps:
        if "updated_at" not in touched:
            result.setdefault("$set", {})["updated_at"] = now
        if upsert and "created_at" not in touched:
            result.setdefault("$setOnInsert", {})["created_at"] = now
    return dict(result)


def _guard_update_pipeline(
    stages: Sequence[Any], rules: CollectionRules, *, now: datetime
) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    touched: set[str] = set()
    for stage in stages:
        name, body = _single_stage(stage)
        if name not in _UPDATE_PIPELINE_STAGES:
            raise UnsafeOperation(f"update pipelines may use $set/$addFields/$unset, not {name}")
        fields = [body] if isinstance(body, str) else list(body)
        for field in fields:
            touched.add(str(field))
            if rules.tenant_keyed and _touches_tenant(str(field)):
                value = body.get(field) if isinstance(body, Mapping) else None
                if rules.tenant_id is None or value != rules.tenant_id:
                    raise TenantMismatch(
                        "an update must not change tenant_id", tenant_id=rules.tenant_id
                    )
        result.append({name: body})
    extra: dict[str, Any] = {}
    if rules.versioned and VERSION_FIELD not in touched:
        extra[VERSION_FIELD] = {"$add": [{"$ifNull": ["$" + VERSION_FIELD, 0]}, 1]}
    if rules.timestamps and "updated_at" not in touched:
        extra["updated_at"] = now
    if extra:
        result.append({"$set": extra})
    return result


def guard_update(
    update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    rules: CollectionRules,
    *,
    now: datetime,
    upsert: bool = False,
) -> dict[str, Any] | list[dict[str, Any]]:
    """An update that cannot move a document to another tenant.

    It also bumps `__v` and `updated_at` whichever path sent it (Beanie's hooks only run on
    instance methods).
    """
    if isinstance(update, Mapping):
        return _guard_update_document(update, rules, now=now, upsert=upsert)
    if isinstance(update, Sequence) and not isinstance(update, str | bytes):
        return _guard_update_pipeline(update, rules, now=now)
    raise UnsafeOperation(f"an update must be a mapping or a pipeline, not {type(update)}")


# -- pipelines -----------------------------------------------------------------------------

Resolver = Callable[[str], LookupTarget]


def _single_stage(stage: Any) -> tuple[str, Any]:
    if not isinstance(stage, Mapping) or len(stage) != 1:
        raise UnsafeOperation(f"a pipeline stage must be a one-key mapping, got {stage!r}")
    ((name, body),) = stage.items()
    return str(name), body


def _target(resolve: Resolver, name: Any, stage: str) -> LookupTarget:
    if not isinstance(name, str):
        raise UnsafeOperation(f"{stage} must name a collection of this layer, got {name!r}")
    return resolve(name)


def _joined_pipeline(
    sub: Any, target: LookupTarget, resolve: Resolver, stage: str
) -> list[dict[str, Any]]:
    if sub is not None and (not isinstance(sub, Sequence) or isinstance(sub, str | bytes)):
        raise UnsafeOperation(f"{stage} pipeline must be a list of stages")
    rewritten = _rewrite_stages(list(sub or []), resolve)
    own = guard_filter(None, target.rules)
    return ([{"$match": own}] if own else []) + rewritten


def _rewrite_lookup(body: Any, resolve: Resolver) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise UnsafeOperation("$lookup needs a document")
    target = _target(resolve, body.get("from"), "$lookup")
    new = dict(body)
    new["from"] = target.physical_name
    pipeline = _joined_pipeline(body.get("pipeline"), target, resolve, "$lookup")
    if pipeline or "pipeline" in body:
        new["pipeline"] = pipeline
    return new


def _rewrite_union(body: Any, resolve: Resolver) -> dict[str, Any]:
    if isinstance(body, str):
        body = {"coll": body}
    if not isinstance(body, Mapping):
        raise UnsafeOperation("$unionWith needs a collection name or a document")
    target = _target(resolve, body.get("coll"), "$unionWith")
    new = dict(body)
    new["coll"] = target.physical_name
    new["pipeline"] = _joined_pipeline(body.get("pipeline"), target, resolve, "$unionWith")
    return new


def _rewrite_graph_lookup(body: Any, resolve: Resolver) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise UnsafeOperation("$graphLookup needs a document")
    target = _target(resolve, body.get("from"), "$graphLookup")
    new = dict(body)
    new["from"] = target.physical_name
    restrict = guard_filter(body.get("restrictSearchWithMatch"), target.rules)
    if restrict:
        new["restrictSearchWithMatch"] = restrict
    return new


def _rewrite_facet(body: Any, resolve: Resolver) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise UnsafeOperation("$facet needs a document of pipelines")
    return {name: _rewrite_stages(list(sub), resolve) for name, sub in body.items()}


def _rewrite_stages(stages: list[Any], resolve: Resolver) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for stage in stages:
        name, body = _single_stage(stage)
        if name in _REFUSED_STAGES:
            raise UnsafeOperation(f"{name} is refused: it {_REFUSED_STAGES[name]}")
        if name == "$lookup":
            result.append({name: _rewrite_lookup(body, resolve)})
        elif name == "$unionWith":
            result.append({name: _rewrite_union(body, resolve)})
        elif name == "$graphLookup":
            result.append({name: _rewrite_graph_lookup(body, resolve)})
        elif name == "$facet":
            result.append({name: _rewrite_facet(body, resolve)})
        elif name == "$match":
            if not isinstance(body, Mapping):
                raise UnsafeOperation("$match needs a document")
            result.append({name: dict(body)})
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
    if not isinstance(pipeline, Sequence) or isinstance(pipeline, str | bytes):
        raise UnsafeOperation("a pipeline must be a list of stages")
    stages = list(pipeline)
    head: dict[str, Any] | None = None
    if stages:
        name, body = _single_stage(stages[0])
        if name == "$match":
            head = {"$match": guard_filter(body, rules, include_deleted=include_deleted)}
            stages = stages[1:]
        elif name == "$geoNear" and isinstance(body, Mapping):
            geo = dict(body)
            geo["query"] = guard_filter(body.get("query"), rules, include_deleted=include_deleted)
            head = {"$geoNear": geo}
            stages = stages[1:]
    if head is None:
        own = guard_filter(None, rules, include_deleted=include_deleted)
        head = {"$match": own} if own else None
    rewritten = _rewrite_stages(stages, resolve)
    for stage in rewritten:
        match = stage.get("$match")
        if match is not None and rules.filters_tenant:
            _check_tenant_conditions(match, rules)
    return ([head] if head else []) + rewritten
