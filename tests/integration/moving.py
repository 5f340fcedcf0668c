"""Helpers for the move tests: seed a tenant, read placements raw, check a finished move."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from typing import Any

from caas_data import DataLayer, Tier, tenant_scope
from caas_data.documents.base import Area
from caas_data.documents.registry import spec_of
from caas_data.repositories import AuditLogRepository, MessageRepository
from caas_data.tenancy.tiers import Placement
from caas_data.testing import Factories, ServerHandle

MODEL_TIERS = {"shared": Tier.FREE, "pro": Tier.PRO, "enterprise": Tier.ENTERPRISE}
DIRECTIONS = [(a, b) for a in MODEL_TIERS for b in MODEL_TIERS if a != b]


@dataclass
class Seeded:
    """What a tenant held before its move."""

    tenant_id: str
    conversation_id: Any
    messages: int
    external_ids: set[str] = field(default_factory=set)


async def seed(layer: DataLayer, tenant_id: str, *, users: int = 6, messages: int = 3) -> Seeded:
    """Users, a direct conversation with messages (seq 1..n), an audit entry."""
    factories = Factories(layer)
    async with tenant_scope(tenant_id, layer=layer):
        made = await factories.users(users)
        chat = await factories.direct_conversation(made[0], made[1])
        for _ in range(messages):
            await factories.message(chat, sender=made[0])
        await layer.repo(AuditLogRepository).append("seeded", target_type="test")
    return Seeded(tenant_id, chat.id, messages, {u.external_id for u in made})


async def tenant_rows(layer: DataLayer, placement: Placement) -> dict[str, int]:
    """The tenant's documents per collection at `placement`, read raw (no resolver, no guard)."""
    counts = {}
    for document_type in layer.registry.in_area(Area.TENANT):
        name = spec_of(document_type).name
        collection = layer.unguarded_collection(
            placement.database,
            placement.collection_name(name),
            why="tests read a placement raw",
            cluster=placement.cluster,
        )
        rows = await collection.count_documents({"tenant_id": placement.tenant_id})
        if rows:
            counts[name] = rows
    return counts


async def raw_external_ids(layer: DataLayer, placement: Placement) -> list[str]:
    """Every user's external id at `placement`, duplicates kept."""
    users = layer.unguarded_collection(
        placement.database,
        placement.collection_name("users"),
        why="tests read a placement raw",
        cluster=placement.cluster,
    )
    return [d["external_id"] async for d in users.find({"tenant_id": placement.tenant_id})]


async def check_after_move(layer: DataLayer, seeded: Seeded, source: Placement) -> None:
    """The sequence continues, the audit chain holds, nothing is left at the old placement."""
    tenant_id = seeded.tenant_id
    async with tenant_scope(tenant_id, layer=layer):
        messages = layer.repo(MessageRepository)
        before = await messages.history(seeded.conversation_id, limit=100)
        assert [m.seq for m in before.items] == list(range(1, seeded.messages + 1))
        sent = await messages.send(seeded.conversation_id, before.items[0].sender_id, text="after")
        assert sent.seq == seeded.messages + 1
        seeded.messages += 1
    assert await tenant_rows(layer, source) == {}
    report = await layer.repo(AuditLogRepository).verify_chain(tenant_id)
    assert report.ok, report


async def run_move_child(
    server: ServerHandle,
    layer: DataLayer,
    tenant_id: str,
    tier: Tier,
    event: str,
    nth: int = 1,
    *,
    write: bool = False,
) -> tuple[int, list[str]]:
    """Move the tenant in another process (`move_worker`), SIGKILLed at the NTH `event`.

    Returns the child's exit code (`-SIGKILL` when it was killed there) and, with `write`,
    the external ids of the users it created during the move and saw acknowledged.
    """
    args = [server.uri, layer.prefix, tenant_id, tier.value, event, str(nth)]
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.move_worker",
        *args,
        *(["write"] if write else []),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(child.communicate(), timeout=120)
    assert child.returncode is not None
    return child.returncode, out.decode().split()
