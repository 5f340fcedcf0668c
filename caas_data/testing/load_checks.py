"""After a fault or load run: what the database holds, read from a raw client, not the layer.

Placement is recomputed here from the tier alone (section 3 of the schema), so a routing bug
in the layer cannot hide itself.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from caas_data.layer import DataLayer
from caas_data.testing.load import Ack

__all__ = ["check_acknowledged", "check_gap_free", "raw_tenant_collection"]

_TENANT_COLLECTIONS = ("messages", "conversations", "reactions", "read_receipts", "counters")


async def _tier(layer: DataLayer, tenant_id: str) -> str:
    directory = layer.client[f"{layer.prefix}_platform"]["saas_clients"]
    entry = await directory.find_one({"tenant_id": tenant_id}, {"tier": 1})
    if entry is None:
        raise LookupError(f"tenant {tenant_id!r} is not in the directory")
    return str(entry["tier"])


async def raw_tenant_collection(
    layer: DataLayer, tenant_id: str, name: str
) -> AsyncCollection[dict[str, Any]]:
    """The driver collection holding `tenant_id`'s `name`, by the schema's placement rule."""
    tier = await _tier(layer, tenant_id)
    if tier == "enterprise":
        return layer.client[f"{layer.prefix}_{tenant_id}"][name]
    if tier == "pro":
        return layer.client[f"{layer.prefix}_shared"][f"{tenant_id}_{name}"]
    return layer.client[f"{layer.prefix}_shared"][name]


async def check_gap_free(
    layer: DataLayer, tenant_id: str, conversation_ids: Iterable[Any]
) -> list[str]:
    """Each conversation's stored seqs are exactly 1..N (tombstones count), N its counter."""
    problems = []
    messages = await raw_tenant_collection(layer, tenant_id, "messages")
    counters = await raw_tenant_collection(layer, tenant_id, "counters")
    for conversation_id in set(conversation_ids):
        seqs = [
            doc["seq"]
            async for doc in messages.find(
                {"tenant_id": tenant_id, "conversation_id": conversation_id}, {"seq": 1}
            )
        ]
        counter = await counters.find_one(
            {"tenant_id": tenant_id, "key": f"conv:{conversation_id}"}
        )
        top = 0 if counter is None else int(counter["value"])
        duplicates = sorted(s for s, n in Counter(seqs).items() if n > 1)
        if duplicates:
            problems.append(f"{tenant_id}/{conversation_id}: duplicate seqs {duplicates[:10]}")
        if sorted(set(seqs)) != list(range(1, top + 1)):
            missing = sorted(set(range(1, top + 1)) - set(seqs))
            problems.append(
                f"{tenant_id}/{conversation_id}: seqs are not 1..{top} "
                f"(missing {missing[:10]}, {len(seqs)} stored)"
            )
    return problems


async def check_acknowledged(
    layer: DataLayer, acks: Sequence[Ack], *, tenants: Iterable[str] = ()
) -> list[str]:
    """Every acknowledged send stored exactly once where its tenant lives, with its seq.

    Also: each conversation's seqs are gap-free, and no document of the tenant's placement
    (for shared collections: none of `tenants`' rows) carries another tenant's id.
    """
    problems: list[str] = []
    by_tenant: dict[str, list[Ack]] = defaultdict(list)
    for ack in acks:
        by_tenant[ack.tenant_id].append(ack)
    for tenant_id, tenant_acks in by_tenant.items():
        messages = await raw_tenant_collection(layer, tenant_id, "messages")
        stored: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        conversation_ids = {ack.conversation_id for ack in tenant_acks}
        async for doc in messages.find({"conversation_id": {"$in": list(conversation_ids)}}):
            stored[doc.get("client_message_id")].append(doc)
        for ack in tenant_acks:
            copies = stored.get(ack.client_message_id, [])
            if len(copies) != 1:
                problems.append(f"{tenant_id}: {ack.client_message_id} stored {len(copies)} times")
                continue
            doc = copies[0]
            if doc["_id"] != ack.message_id or doc["seq"] != ack.seq:
                problems.append(f"{tenant_id}: {ack.client_message_id} differs from its ack")
            if doc["tenant_id"] != tenant_id or doc.get("deleted_at") is not None:
                problems.append(f"{tenant_id}: {ack.client_message_id} foreign or deleted")
        problems += await check_gap_free(layer, tenant_id, conversation_ids)
    everyone = set(tenants) | set(by_tenant)
    for tenant_id in everyone:
        tier = await _tier(layer, tenant_id)
        for name in _TENANT_COLLECTIONS:
            collection = await raw_tenant_collection(layer, tenant_id, name)
            # Shared collections hold other tenants' rows by design: only the run's tenants
            # must not be mixed up. A PRO collection set or an ENTERPRISE database holds
            # exactly one tenant.
            if tier not in ("pro", "enterprise"):
                continue
            strangers = await collection.count_documents({"tenant_id": {"$ne": tenant_id}})
            if strangers:
                problems.append(f"{tenant_id}: {strangers} foreign document(s) in {name}")
    return problems
