"""The tenant guard's rules as pure functions: filters, new documents, replacements, updates.

They take what a driver call would send and return what it must send instead, or raise.
`tenant_id` is merged into a filter at the top level (never by wrapping the filter in `$and`):
real MongoDB plans both the same, but some servers only use the `_id` index for a top-level
`_id`. Anything these rules do not understand is refused, never passed through.

What is checked is what is sent: every mapping the rules look into is first copied
(`tenancy/snapshots.py`). Pipelines and their joins have rules of their own
(`tenancy/pipeline_rules.py`), built on these.

The layer owns some fields on every document: `tenant_id`, `__v`, `created_at`, `updated_at`,
`deleted_at`/`deleted_by` and `schema_version`, plus the fields a document class declares in
`caas_protected_fields` (e.g. an invoice's number and status, which only the domain's own method
may set). Update operators and replacements cannot change them; only the layer's own writes,
through a privileged guard, can.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import methodcaller
from typing import Any

from caas_data.clock import write_stamp
from caas_data.errors import TenantMismatch, UnsafeOperation
from caas_data.tenancy.snapshots import (
    MAX_DEPTH,
    plain_key,
    plain_list,
    plain_mapping,
    plain_str,
    single_stage,
)

__all__ = [
    "ANY_AT_INSERT",
    "DELETED_FIELD",
    "OWNED_FIELDS",
    "TENANT_FIELD",
    "CollectionRules",
    "GuardedUpdate",
    "check_tenant_conditions",
    "guard_filter",
    "guard_new_document",
    "guard_replacement",
    "guard_update",
    "guard_write_filter",
    "plain_key",
    "snapshot_filter",
]

TENANT_FIELD = "tenant_id"
VERSION_FIELD = "__v"
DELETED_FIELD = "deleted_at"
DELETED_BY_FIELD = "deleted_by"
_MAX_VERSION = 2**63 - 2

# Fields only the layer writes (tenant_id has rules of its own).
OWNED_FIELDS = frozenset(
    {VERSION_FIELD, "created_at", "updated_at", DELETED_FIELD, DELETED_BY_FIELD, "schema_version"}
)
# Owned fields an update may name in `$set` only as the whole-document `$set` of Beanie's
# `save()` does: they take effect at insert (upsert) and are ignored on a stored document.
_INSERT_ONLY = frozenset({"created_at", "schema_version"})

# A protected field a new document may carry with any value (required fields).
ANY_AT_INSERT: Any = type("AnyAtInsert", (), {"__repr__": lambda self: "<any at insert>"})()

_LOGICAL = ("$and", "$or", "$nor")
_UPDATE_OPERATORS = frozenset(
    {
        "$set", "$setOnInsert", "$unset", "$inc", "$mul", "$min", "$max", "$rename",
        "$currentDate", "$push", "$pull", "$pullAll", "$addToSet", "$pop", "$bit",
    }
)  # fmt: skip
_UPDATE_PIPELINE_STAGES = frozenset({"$set", "$addFields", "$unset"})
_IS_OPERATOR = methodcaller("startswith", "$")


@dataclass(frozen=True, slots=True)
class CollectionRules:
    """What the guard enforces on one physical collection for one scope.

    `tenant_id` None means no tenant filter (platform data, or a system scope). `read_only`
    refuses every write (platform data seen from a tenant scope). `protected` maps the fields
    only the domain's own methods may write to the value a new document must carry.
    `privileged` is the layer's own writes: owned and protected fields are theirs to set.
    """

    tenant_id: str | None
    versioned: bool = True
    timestamps: bool = True
    soft_delete: bool = False
    tenant_keyed: bool = True
    append_only: bool = False
    read_only: bool = False
    protected: Mapping[str, Any] = field(default_factory=dict)
    writable_when: Mapping[str, Any] = field(default_factory=dict)
    privileged: bool = False

    @property
    def filters_tenant(self) -> bool:
        """True when every read and write must carry `tenant_id`."""
        return self.tenant_keyed and self.tenant_id is not None


@dataclass(frozen=True, slots=True)
class GuardedUpdate:
    """An update as it must be sent: the conditions it adds to the filter, and its body."""

    conditions: dict[str, Any]
    update: dict[str, Any] | list[dict[str, Any]]

    def filter(self, query: dict[str, Any]) -> dict[str, Any]:
        """`query` (already guarded) with this update's conditions merged in."""
        return _merge_conditions(query, self.conditions)


# -- snapshots ----------------------------------------------------------------------------


def snapshot_filter(query: Any, depth: int = 0) -> dict[str, Any]:
    """A plain copy of a filter, with every logical clause copied too."""
    if depth > MAX_DEPTH:
        raise UnsafeOperation("filter nested too deeply")
    result = plain_mapping(query, "a filter")
    for key in _LOGICAL:
        if key in result:
            clauses = plain_list(result[key], f"{key}")
            result[key] = [snapshot_filter(clause, depth + 1) for clause in clauses]
    return result


# -- filters ------------------------------------------------------------------------------


def _mismatch(rules: CollectionRules, what: str) -> TenantMismatch:
    return TenantMismatch(f"{what} names another tenant", tenant_id=rules.tenant_id)


def _condition_is_tenant(condition: Any, tenant_id: str) -> bool:
    text = plain_str(condition)
    if text is not None:
        return text == tenant_id
    if isinstance(condition, Mapping) and len(condition) == 1:
        ((op, value),) = dict(condition).items()
        if op == "$eq":
            return plain_str(value) == tenant_id
        if op == "$in" and isinstance(value, list | tuple):
            return len(value) > 0 and all(plain_str(v) == tenant_id for v in value)
    return False


def check_tenant_conditions(query: Mapping[str, Any], rules: CollectionRules) -> None:
    """Refuse any clause, at any logical depth, that names a tenant other than the scope's.

    `query` must be a snapshot (`snapshot_filter`).
    """
    assert rules.tenant_id is not None
    for key, value in query.items():
        if key == TENANT_FIELD or key.startswith(TENANT_FIELD + "."):
            if not _condition_is_tenant(value, rules.tenant_id):
                raise _mismatch(rules, f"filter {{{key!r}: {value!r}}}")
        elif key in _LOGICAL:
            for clause in value:
                check_tenant_conditions(clause, rules)


def _mentions(query: Mapping[str, Any], name: str) -> bool:
    for key, value in query.items():
        if key == name:
            return True
        if key in _LOGICAL and any(_mentions(c, name) for c in value):
            return True
    return False


def guard_filter(
    query: Mapping[str, Any] | None, rules: CollectionRules, *, include_deleted: bool = False
) -> dict[str, Any]:
    """The filter with the scope's tenant (and the live-documents rule) merged in."""
    result = {} if query is None else snapshot_filter(query)
    if rules.filters_tenant:
        assert rules.tenant_id is not None
        check_tenant_conditions(result, rules)
        result.pop(TENANT_FIELD, None)
        result = {TENANT_FIELD: rules.tenant_id, **result}
    if rules.soft_delete and not include_deleted and not _mentions(result, DELETED_FIELD):
        result[DELETED_FIELD] = None
    return result


def guard_write_filter(
    query: Mapping[str, Any] | None, rules: CollectionRules, *, include_deleted: bool = False
) -> dict[str, Any]:
    """`guard_filter` for a write: also only documents the general API may still change."""
    result = guard_filter(query, rules, include_deleted=include_deleted)
    if rules.privileged:
        return result
    return _merge_conditions(result, rules.writable_when)


def _merge_conditions(query: dict[str, Any], conditions: Mapping[str, Any]) -> dict[str, Any]:
    if not conditions:
        return query
    merged = dict(query)
    for key, value in conditions.items():
        if key in merged and merged[key] != value:
            raise UnsafeOperation(
                f"the filter's condition on {key!r} contradicts what the write needs "
                f"({key}: {value!r})"
            )
        merged[key] = value
    return merged


# -- new documents and replacements ---------------------------------------------------------


def _stamp_tenant(document: dict[str, Any], rules: CollectionRules, what: str) -> None:
    if not rules.tenant_keyed:
        return
    given = document.get(TENANT_FIELD)
    if rules.tenant_id is None:
        text = plain_str(given)
        if not text:
            raise TenantMismatch(f"{what} in a system scope must carry its tenant_id")
        document[TENANT_FIELD] = text
        return
    if given is None or plain_str(given) == rules.tenant_id:
        document[TENANT_FIELD] = rules.tenant_id
    else:
        raise TenantMismatch(
            f"{what} belongs to tenant {given!r}, not to the scope's", tenant_id=rules.tenant_id
        )


def _check_protected_new(document: Mapping[str, Any], rules: CollectionRules) -> None:
    if rules.privileged:
        return
    for name, default in rules.protected.items():
        if default is not ANY_AT_INSERT and name in document and document[name] != default:
            raise UnsafeOperation(
                f"{name!r} is set by the domain's own method, not on insert "
                f"(a new document carries {default!r})",
                tenant_id=rules.tenant_id,
            )


def guard_new_document(
    document: Mapping[str, Any], rules: CollectionRules, *, now: datetime | None = None
) -> dict[str, Any]:
    """A document about to be inserted: tenant stamped, timestamps and version set.

    `now` stamps missing timestamps; without it the clock is read only when one is missing
    (the repositories and Beanie send both already).
    """
    result = plain_mapping(document, "a document")
    _stamp_tenant(result, rules, "document")
    _check_protected_new(result, rules)
    # Every document class carries schema_version (default 1); a raw insert that omits it
    # must store it too, or a later replacement (conditional on it) could never match.
    result.setdefault("schema_version", 1)
    if rules.timestamps and ("created_at" not in result or "updated_at" not in result):
        stamp = now if now is not None else write_stamp()
        result.setdefault("created_at", stamp)
        result.setdefault("updated_at", stamp)
    if rules.versioned:
        version = result.get(VERSION_FIELD, 0)
        if (type(version) is not int or version != 0) and not rules.privileged:
            raise UnsafeOperation(
                f"a new document starts at version 0, not {version!r} (`__v` is the layer's)",
                tenant_id=rules.tenant_id,
            )
        result.setdefault(VERSION_FIELD, 0)
    return result


def _version_value(value: Any, rules: CollectionRules) -> int:
    if type(value) is not int or not 0 <= value <= _MAX_VERSION:
        raise UnsafeOperation(
            f"`__v` must be the integer version the document was read with, not {value!r}",
            tenant_id=rules.tenant_id,
        )
    return value


_SCHEMA_VERSION_DEFAULT = 1


def _pinned_fields(rules: CollectionRules) -> dict[str, Any]:
    """Fields a replacement must carry unchanged, with the value an absent field stands for."""
    pinned: dict[str, Any] = {"schema_version": _SCHEMA_VERSION_DEFAULT}
    pinned.update({name: None for name in rules.protected})
    # `created_at` is not pinned: a replacement is a whole new document (Beanie's
    # `replace_one(other)`), and its creation time is its own; update operators cannot set it.
    if rules.soft_delete:
        pinned[DELETED_FIELD] = pinned[DELETED_BY_FIELD] = None
    return pinned


def _pin(value: Any, absent: Any) -> Any:
    """The condition "stored as `value`"; a stored document may lack a field at its default."""
    if value is None or absent is None or value != absent:
        return value  # `None` also matches a missing field
    return {"$in": [value, None]}


def guard_replacement(
    query: Mapping[str, Any] | None,
    replacement: Mapping[str, Any],
    rules: CollectionRules,
    *,
    now: datetime,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A replacement, conditional on the `__v` it carries and stored with `__v + 1`.

    It is also conditional on the layer's other fields being what it carries (it cannot change
    `schema_version`, `deleted_at` or a protected field): a replacement that tries matches
    nothing.
    `query` must already have passed `guard_filter`.
    """
    new = plain_mapping(replacement, "a replacement")
    if any(map(_IS_OPERATOR, new)):  # keys are exact str here; no Python frame per key
        raise UnsafeOperation("a replacement must not contain update operators")
    _stamp_tenant(new, rules, "replacement")
    conditions: dict[str, Any] = {}
    if rules.versioned:
        if VERSION_FIELD not in new:
            raise UnsafeOperation(
                "a replacement of a versioned document must carry the `__v` it was read with"
            )
        version = _version_value(new[VERSION_FIELD], rules)
        conditions[VERSION_FIELD] = version
        new[VERSION_FIELD] = version + 1
    if not rules.privileged:
        for name, absent in _pinned_fields(rules).items():
            conditions[name] = _pin(new.get(name), absent)
    if rules.timestamps:
        new["updated_at"] = now
        new.setdefault("created_at", now)
    return _merge_conditions(dict(query or {}), conditions), new


# -- updates ------------------------------------------------------------------------------


def _top(path: str) -> str:
    return path.split(".", 1)[0]


def _refuse_field(rules: CollectionRules, operator: str, name: str, why: str) -> UnsafeOperation:
    return UnsafeOperation(
        f"an update must not {operator} {name!r}: {why}", tenant_id=rules.tenant_id
    )


def _check_tenant_write(rules: CollectionRules, operator: str, value: Any, path: str) -> None:
    allowed = operator in ("$set", "$setOnInsert") and path == TENANT_FIELD
    if not allowed or rules.tenant_id is None or plain_str(value) != rules.tenant_id:
        raise TenantMismatch(
            f"an update must not change tenant_id ({operator} {path})", tenant_id=rules.tenant_id
        )


class _UpdateBuilder:
    """Rewrites one operator document; collects the filter conditions it needs."""

    def __init__(self, rules: CollectionRules, *, upsert: bool, single: bool) -> None:
        self.rules = rules
        self.upsert = upsert
        self.single = single
        self.conditions: dict[str, Any] = {}
        self.result: dict[str, dict[str, Any]] = {}
        self.version_set = False

    def put(self, operator: str, name: str, value: Any) -> None:
        self.result.setdefault(operator, {})[name] = value

    def field(self, operator: str, path: str, value: Any) -> None:
        rules = self.rules
        top = _top(path)
        if rules.tenant_keyed and top == TENANT_FIELD:
            _check_tenant_write(rules, operator, value, path)
            self.put(operator, TENANT_FIELD, rules.tenant_id)
            return
        if rules.privileged or (top not in OWNED_FIELDS and top not in rules.protected):
            self.put(operator, path, value)
            return
        if top in rules.protected:
            raise _refuse_field(rules, operator, path, "only the domain's own method sets it")
        if top != path:
            raise _refuse_field(rules, operator, path, "the layer owns this field")
        self.owned(operator, path, value)

    def owned(self, operator: str, name: str, value: Any) -> None:
        rules = self.rules
        if operator == "$setOnInsert":
            self.on_insert(name, value)
        elif name == VERSION_FIELD:
            if operator != "$set" or not self.single or not rules.versioned:
                raise _refuse_field(
                    rules, operator, name, "`$set` it on one document to the version read"
                )
            version = _version_value(value, rules)
            self.conditions[VERSION_FIELD] = version
            self.put("$set", VERSION_FIELD, version + 1)
            self.version_set = True
        elif name == "updated_at":
            if operator != "$set":
                raise _refuse_field(rules, operator, name, "the layer stamps it")
            # The guard stamps its own time below.
        elif name in _INSERT_ONLY:
            # Only a whole-document `$set` (Beanie's `save()`, `update()` of the object) may
            # name it, and cannot change it: the update is made conditional on the stored value
            # being this one, and an upsert sets it when the document is created.
            if operator != "$set":
                raise _refuse_field(rules, operator, name, "it is set when the document is created")
            absent = _SCHEMA_VERSION_DEFAULT if name == "schema_version" else None
            self.conditions[name] = _pin(value, absent)
            if self.upsert:
                self.put("$setOnInsert", name, value)
        elif name in (DELETED_FIELD, DELETED_BY_FIELD):
            clearing = operator == "$unset" or (operator == "$set" and value is None)
            if not clearing or not rules.soft_delete:
                raise _refuse_field(rules, operator, name, "use delete() and restore()")
            # Only live documents may be written like this, so it changes nothing.
            self.conditions[DELETED_FIELD] = None
        else:  # pragma: no cover - OWNED_FIELDS is covered above
            raise _refuse_field(rules, operator, name, "the layer owns this field")

    def on_insert(self, name: str, value: Any) -> None:
        """`$setOnInsert` of an owned field: only the value a new document gets anyway."""
        fresh = {VERSION_FIELD: 0, DELETED_FIELD: None, DELETED_BY_FIELD: None}
        if name in _INSERT_ONLY:
            if self.upsert:
                self.put("$setOnInsert", name, value)
        elif name in fresh and (value != fresh[name] or type(value) is bool):
            raise _refuse_field(
                self.rules, "$setOnInsert", name, f"a new document has {fresh[name]!r}"
            )
        # `updated_at` and `__v` are set by the guard itself; deleted fields start empty.


def _rename_target(rules: CollectionRules, value: Any) -> str:
    target = plain_str(value)
    if target is None:
        raise UnsafeOperation("$rename needs field names as targets")
    top = _top(target)
    if rules.tenant_keyed and top == TENANT_FIELD:
        raise TenantMismatch(
            "an update must not change tenant_id ($rename)", tenant_id=rules.tenant_id
        )
    if not rules.privileged and (top in OWNED_FIELDS or top in rules.protected):
        raise _refuse_field(rules, "$rename onto", target, "the layer owns this field")
    return target


def _guard_update_document(
    update: Mapping[str, Any], rules: CollectionRules, *, now: datetime, upsert: bool, single: bool
) -> GuardedUpdate:
    builder = _UpdateBuilder(rules, upsert=upsert, single=single)
    for operator, arguments in plain_mapping(update, "an update").items():
        if operator not in _UPDATE_OPERATORS:
            raise UnsafeOperation(f"unknown or unsupported update operator {operator!r}")
        fields = plain_mapping(arguments, f"update operator {operator}")
        if not fields:
            builder.result.setdefault(operator, {})
        for path, value in fields.items():
            if operator == "$rename":
                value = _rename_target(rules, value)
            builder.field(operator, path, value)
    touched = {_top(path) for body in builder.result.values() for path in body}
    if rules.versioned and not builder.version_set and VERSION_FIELD not in touched:
        builder.result.setdefault("$inc", {})[VERSION_FIELD] = 1
    if rules.timestamps:
        builder.result.setdefault("$set", {})["updated_at"] = now
        if upsert and "created_at" not in builder.result.get("$setOnInsert", {}):
            builder.result.setdefault("$setOnInsert", {})["created_at"] = now
    return GuardedUpdate(builder.conditions, dict(builder.result))


def _pipeline_fields(name: str, body: Any) -> dict[str, Any]:
    if name == "$unset":
        names = [body] if isinstance(body, str) else plain_list(body, "$unset")
        return {plain_key(n): None for n in names}
    return plain_mapping(body, f"{name} in an update pipeline")


def _guard_update_pipeline(
    stages: Sequence[Any], rules: CollectionRules, *, now: datetime
) -> GuardedUpdate:
    result: list[dict[str, Any]] = []
    for stage in stages:
        name, body = single_stage(stage)
        if name not in _UPDATE_PIPELINE_STAGES:
            raise UnsafeOperation(f"update pipelines may use $set/$addFields/$unset, not {name}")
        fields = _pipeline_fields(name, body)
        for path in fields:
            top = _top(path)
            if rules.tenant_keyed and top == TENANT_FIELD:
                _check_tenant_write(rules, "$set" if name != "$unset" else name, fields[path], path)
            elif (top in OWNED_FIELDS or top in rules.protected) and not rules.privileged:
                raise _refuse_field(rules, name, path, "the layer owns this field")
        if name == "$unset":
            result.append({name: list(fields)})
        else:
            result.append({name: fields})
    extra: dict[str, Any] = {}
    if rules.versioned:
        extra[VERSION_FIELD] = {"$add": [{"$ifNull": ["$" + VERSION_FIELD, 0]}, 1]}
    if rules.timestamps:
        extra["updated_at"] = now
    if extra:
        result.append({"$set": extra})
    return GuardedUpdate({}, result)


def guard_update(
    update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    rules: CollectionRules,
    *,
    now: datetime,
    upsert: bool = False,
    single: bool = True,
) -> GuardedUpdate:
    """An update that cannot move a document to another tenant nor touch the layer's fields.

    It also bumps `__v` and `updated_at` whichever path sent it (Beanie's hooks only run on
    instance methods). `$set` of `__v` on one document (`single`) makes the update conditional
    on that version, as Beanie's `save()` sends it.
    """
    if rules.read_only and not rules.privileged:
        raise UnsafeOperation("this collection is read-only here", tenant_id=rules.tenant_id)
    if isinstance(update, Mapping):
        return _guard_update_document(update, rules, now=now, upsert=upsert, single=single)
    if isinstance(update, list | tuple):
        return _guard_update_pipeline(update, rules, now=now)
    raise UnsafeOperation(f"an update must be a mapping or a pipeline, not {type(update).__name__}")
