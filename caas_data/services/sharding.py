"""The sharding plan of the shared collections (`layer.sharding_plan()`), for a mongos.

No sharded cluster runs where this library is developed and tested: the plan is generated
from the declared indexes and checked against MongoDB's documented rules instead:

- the shard key must be a prefix of an index (the plan creates one when none is declared);
- every unique index must have the shard key as a prefix (else it cannot be enforced);
- `tenant_id` leads every key, so each tenant's rows sit in contiguous chunk ranges and a
  tenant can be pinned to a zone with one key range per collection.

Choosing each key: the longest common prefix of the collection's unique indexes (that is
the longest key all of them can keep), else `tenant_id` plus the next field of the first
declared index (more cardinality than `tenant_id` alone). For `messages` this gives
`{tenant_id, conversation_id}`: `{tenant_id, conversation_id, seq}` would split a
conversation across chunks by `seq` (good for one giant conversation) but the unique
`{tenant_id, conversation_id, client_message_id}` index (idempotent sends) does not start
with it, which MongoDB refuses; a conversation's history stays on one shard, read by one
targeted query. A key of `tenant_id` alone (users, conversations: several unique keys that
share nothing more) keeps a tenant's rows together: a very large tenant there makes jumbo
chunks, which is what a zone of its own, or a move to a database of its own, is for.
Collections with `caas_collection_options` (time series) are left unsharded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bson import MaxKey, MinKey

from caas_data.documents.base import Area
from caas_data.documents.indexes import declared_indexes
from caas_data.documents.registry import spec_of
from caas_data.errors import ConfigurationError

if TYPE_CHECKING:
    from caas_data.layer import DataLayer

__all__ = ["ShardedCollection", "ShardingPlan", "index_keys", "sharding_plan"]


@dataclass(frozen=True, slots=True)
class ShardedCollection:
    """One shared collection's shard key, why, and the index it needs (if not declared)."""

    namespace: str
    key: dict[str, int]
    why: str
    create_index: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ShardingPlan:
    """The commands to run on a mongos, in order, and what each collection gets."""

    database: str
    collections: tuple[ShardedCollection, ...]
    unsharded: tuple[str, ...] = ()
    zone_ranges: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def commands(self) -> list[dict[str, Any]]:
        """enableSharding, missing supporting indexes, shardCollection, then zone ranges."""
        commands: list[dict[str, Any]] = [{"enableSharding": self.database}]
        for collection in self.collections:
            if collection.create_index is not None:
                commands.append(collection.create_index)
        commands += [{"shardCollection": c.namespace, "key": dict(c.key)} for c in self.collections]
        return commands + list(self.zone_ranges)


def index_keys(document_type: type[Any]) -> list[tuple[list[tuple[str, Any]], bool]]:
    """(key fields with directions, unique) of each declared index of a class."""
    result = []
    for model in declared_indexes(document_type):
        document = model.document
        result.append((list(document["key"].items()), bool(document.get("unique", False))))
    return result


def _common_prefix(keys: Sequence[list[tuple[str, Any]]]) -> list[str]:
    names = [[name for name, _ in key] for key in keys]
    prefix: list[str] = []
    for fields in zip(*names, strict=False):
        if len(set(fields)) != 1:
            break
        prefix.append(fields[0])
    return prefix


def _choose_key(indexes: list[tuple[list[tuple[str, Any]], bool]]) -> tuple[list[str], str]:
    unique = [key for key, is_unique in indexes if is_unique]
    if unique:
        prefix = _common_prefix(unique)
        return prefix, (
            "the longest prefix every unique index shares, so each stays enforceable"
            if len(prefix) > 1
            else "its unique indexes share only tenant_id: a tenant's rows stay together"
        )
    first = next((key for key, _ in indexes if key and key[0][0] == "tenant_id"), None)
    if first is None or len(first) < 2:
        return ["tenant_id"], "no index beyond tenant_id"
    return [first[0][0], first[1][0]], "tenant_id and the next field of its first index"


def _supported(key: list[str], indexes: list[tuple[list[tuple[str, Any]], bool]]) -> bool:
    return any(
        [(n, d) for n, d in index[: len(key)]] == [(n, 1) for n in key] for index, _ in indexes
    )


def sharding_plan(layer: DataLayer, *, zones: Mapping[str, str] | None = None) -> ShardingPlan:
    """The plan for the layer's shared database; `zones` pins tenants (tenant -> zone name).

    The shards of each zone are the operator's (`addShardToZone`); the plan gives every
    collection's key range of each pinned tenant (`updateZoneKeyRange`).
    """
    database = f"{layer.prefix}_shared"
    planned: list[ShardedCollection] = []
    unsharded: list[str] = []
    for document_type in layer.registry.in_area(Area.TENANT):
        name = spec_of(document_type).name
        namespace = f"{database}.{name}"
        if document_type.caas_collection_options:
            unsharded.append(namespace)
            continue
        indexes = index_keys(document_type)
        key, why = _choose_key(indexes)
        if key[0] != "tenant_id":
            raise ConfigurationError(f"{namespace}: a unique index does not lead with tenant_id")
        create = None
        if not _supported(key, indexes):
            create = {
                "createIndexes": name,
                "indexes": [{"key": dict.fromkeys(key, 1), "name": "shard_key"}],
                "$db": database,
            }
        planned.append(ShardedCollection(namespace, dict.fromkeys(key, 1), why, create))
    ranges: list[dict[str, Any]] = []
    for tenant_id, zone in sorted((zones or {}).items()):
        for collection in planned:
            rest = list(collection.key)[1:]
            low: dict[str, Any] = {"tenant_id": tenant_id, **dict.fromkeys(rest, MinKey())}
            # The upper bound is exclusive: with tenant_id alone, the next string after it.
            high: dict[str, Any] = (
                {"tenant_id": tenant_id, **dict.fromkeys(rest, MaxKey())}
                if rest
                else {"tenant_id": tenant_id + "\x00"}
            )
            ranges.append(
                {
                    "updateZoneKeyRange": collection.namespace,
                    "min": low,
                    "max": high,
                    "zone": zone,
                }
            )
    notes = (
        "Generated, not run: no sharded cluster (mongos) runs on the development machines.",
        "Pro and Enterprise tenants are not in the shared database: they scale by cluster.",
        "_id is unique per shard only; ObjectIds do not collide.",
    )
    return ShardingPlan(database, tuple(planned), tuple(unsharded), tuple(ranges), notes)
