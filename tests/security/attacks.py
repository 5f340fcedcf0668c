"""Hostile values and attack builders shared by the security cases and the meta test.

Every builder takes the attacker's id and a victim (`Seeded`) and returns what an attacker
would send: a filter, an update, a document. Nothing here talks to the server.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from .conftest import Seeded


class LookAlike(str):
    """A tenant id that says it equals every string (a guard comparing with == is fooled)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


class Shifty(Mapping[str, Any]):
    """A mapping that shows a harmless face first and the hostile one on later looks."""

    def __init__(self, first: Mapping[str, Any], later: Mapping[str, Any]) -> None:
        self._faces = itertools.chain([dict(first)], itertools.repeat(dict(later)))
        self._later = dict(later)
        self._current = dict(first)

    def _look(self) -> dict[str, Any]:
        self._current = next(self._faces)
        return self._current

    def __iter__(self) -> Iterator[str]:
        return iter(self._look())

    def __len__(self) -> int:
        return len(self._current)

    def __getitem__(self, key: str) -> Any:
        if key in self._current:
            return self._current[key]
        return self._later[key]

    def keys(self) -> Any:
        return self._look().keys()

    def items(self) -> Any:
        return self._look().items()


FilterBuilder = Callable[[str, Seeded], Any]

# A filter that tries to reach the victim's rows of `users`.
FILTERS: dict[str, FilterBuilder] = {
    "tenant_eq": lambda me, v: {"tenant_id": v.tenant_id},
    "tenant_ne_me": lambda me, v: {"tenant_id": {"$ne": me}},
    "tenant_in": lambda me, v: {"tenant_id": {"$in": [me, v.tenant_id]}},
    "tenant_nin": lambda me, v: {"tenant_id": {"$nin": [me]}},
    "or_victim": lambda me, v: {"$or": [{"tenant_id": v.tenant_id}, {"tenant_id": me}]},
    "nor_me": lambda me, v: {"$nor": [{"tenant_id": me}]},
    "and_victim": lambda me, v: {
        "$and": [{"external_id": "graph-root"}, {"tenant_id": v.tenant_id}]
    },
    "expr_tenant": lambda me, v: {"$expr": {"$ne": ["$tenant_id", me]}},
    "where": lambda me, v: {"$where": f"this.tenant_id != '{me}'"},
    "regex_tenant": lambda me, v: {"tenant_id": {"$regex": "^"}},
    "dotted_tenant": lambda me, v: {"tenant_id.0": {"$exists": False}},
    "non_str_key": lambda me, v: {1: "x"},
    "lookalike_value": lambda me, v: {"tenant_id": LookAlike(v.tenant_id)},
    "shifty_mapping": lambda me, v: Shifty(
        {"external_id": "graph-root"}, {"tenant_id": v.tenant_id}
    ),
    "victim_id": lambda me, v: {"_id": v.user_ids[0]},
    "victim_ids_in": lambda me, v: {"_id": {"$in": v.user_ids}},
    "or_victim_id": lambda me, v: {"$or": [{"_id": v.user_ids[0]}, {"_id": {"$exists": True}}]},
}

UpdateBuilder = Callable[[str, Seeded], Any]

# An update that tries to move a document to the victim (or out of every tenant).
TENANT_UPDATES: dict[str, UpdateBuilder] = {
    "set_tenant": lambda me, v: {"$set": {"tenant_id": v.tenant_id}},
    "set_lookalike": lambda me, v: {"$set": {"tenant_id": LookAlike(v.tenant_id)}},
    "rename_to_tenant": lambda me, v: {"$rename": {"display_name": "tenant_id"}},
    "rename_from_tenant": lambda me, v: {"$rename": {"tenant_id": "was_tenant"}},
    "unset_tenant": lambda me, v: {"$unset": {"tenant_id": ""}},
    "set_on_insert_tenant": lambda me, v: {"$setOnInsert": {"tenant_id": v.tenant_id}},
    "pipeline_set_tenant": lambda me, v: [{"$set": {"tenant_id": v.tenant_id}}],
    "pipeline_literal_tenant": lambda me, v: [{"$set": {"tenant_id": {"$literal": v.tenant_id}}}],
    "pipeline_concat_tenant": lambda me, v: [
        {"$set": {"tenant_id": {"$concat": [v.tenant_id[:3], v.tenant_id[3:]]}}}
    ],
    "pipeline_unset_tenant": lambda me, v: [{"$unset": "tenant_id"}],
    "pipeline_unset_list": lambda me, v: [{"$unset": ["tenant_id"]}],
    "pipeline_replace_root": lambda me, v: [
        {"$replaceWith": {"$mergeObjects": ["$$ROOT", {"tenant_id": v.tenant_id}]}}
    ],
}

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

# Raw update operators on the fields the layer owns.
OWNED_FIELDS = ("__v", "created_at", "deleted_at", "deleted_by", "schema_version")
OWNED_OPERATORS: dict[str, Callable[[str], dict[str, Any]]] = {
    "set": lambda f: {"$set": {f: 0 if f in ("__v", "schema_version") else EPOCH}},
    "inc": lambda f: {"$inc": {f: 5}},
    "min": lambda f: {"$min": {f: -1 if f in ("__v", "schema_version") else EPOCH}},
    "max": lambda f: {
        "$max": {f: 10**6 if f in ("__v", "schema_version") else datetime(2999, 1, 1, tzinfo=UTC)}
    },
    "currentDate": lambda f: {"$currentDate": {f: True}},
    "unset": lambda f: {"$unset": {f: ""}},
    "rename": lambda f: {"$rename": {f: "moved_" + f.strip("_")}},
}
