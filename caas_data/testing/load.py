"""Load workloads shared by the CI load suite (correctness only) and `make load` (numbers).

Each workload returns what it did (acknowledged sends, per-operation latencies) so the caller
checks it from a raw client and, in `make load`, prints rates as ratios. No workload asserts a
time: machines differ; ratios measured in the same run do not.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from beanie import PydanticObjectId

from caas_data.errors import CaasDataError, RetryableError, VersionConflict
from caas_data.layer import DataLayer
from caas_data.repositories.saas.messaging import (
    ConversationRepository,
    MessageRepository,
    ReactionRepository,
    ReadReceiptRepository,
)
from caas_data.tenancy.context import tenant_scope
from caas_data.testing.factories import Factories

__all__ = [
    "Ack",
    "LoadResult",
    "hot_versus_spread",
    "mixed_tenants",
    "percentile",
]


@dataclass(frozen=True, slots=True)
class Ack:
    """One send the layer acknowledged: where it went and the seq it got."""

    tenant_id: str
    conversation_id: PydanticObjectId
    message_id: PydanticObjectId
    sender_id: PydanticObjectId
    client_message_id: str
    seq: int


@dataclass(slots=True)
class LoadResult:
    """What a workload did: acknowledged sends, latencies per operation, failures, foreign reads."""

    acks: list[Ack] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    foreign_reads: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def operations(self) -> int:
        """Every timed operation, successful or not."""
        return sum(len(v) for v in self.latencies.values()) + sum(self.failures.values())

    def report(self, title: str) -> str:
        """Ops/s and p50/p99 per operation, one line each."""
        lines = [f"{title}: {self.operations()} ops in {self.seconds:.2f}s "
                 f"({self.operations() / max(self.seconds, 1e-9):.0f} ops/s)"]  # fmt: skip
        for name in sorted(self.latencies):
            values = self.latencies[name]
            lines.append(
                f"  {name:<12} n={len(values):<6} p50={percentile(values, 50) * 1000:8.1f} ms "
                f"p99={percentile(values, 99) * 1000:8.1f} ms  failed={self.failures[name]}"
            )
        return "\n".join(lines)


def percentile(values: list[float], pct: float) -> float:
    """The `pct` percentile (nearest rank) of `values`; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def _timed(result: LoadResult, name: str, call: Any) -> Any:
    start = time.perf_counter()
    try:
        value = await call
    except CaasDataError:
        result.failures[name] += 1
        raise
    result.latencies[name].append(time.perf_counter() - start)
    return value


async def _send(
    result: LoadResult,
    layer: DataLayer,
    tenant_id: str,
    conversation_id: PydanticObjectId,
    sender: PydanticObjectId,
    client_id: str,
) -> None:
    """Send until acknowledged (retrying transient faults with the same client id)."""
    messages = layer.repo(MessageRepository)
    for _ in range(20):
        try:
            message = await _timed(
                result,
                "send",
                messages.send(conversation_id, sender, text=client_id, client_message_id=client_id),
            )
        except RetryableError:
            await asyncio.sleep(0.01)
            continue
        assert message.id is not None
        result.acks.append(
            Ack(tenant_id, conversation_id, message.id, sender, client_id, message.seq)
        )
        return


async def hot_versus_spread(
    layer: DataLayer, tenant_id: str, *, senders: int = 50, sends_each: int = 10
) -> tuple[LoadResult, LoadResult]:
    """`senders` tasks into one conversation, then the same into one conversation each."""
    async with tenant_scope(tenant_id, layer=layer):
        factories = Factories(layer)
        people = await factories.users(senders)
        ids = [p.id for p in people if p.id is not None]
        conversations = layer.repo(ConversationRepository)
        hot = await factories.group_conversation(people, title="hot")
        spread = [
            await conversations.open_direct(ids[i], ids[(i + 1) % senders]) for i in range(senders)
        ]

    async def run(targets: list[PydanticObjectId], tag: str) -> LoadResult:
        result = LoadResult()

        async def sender(i: int) -> None:
            async with tenant_scope(tenant_id, layer=layer):
                for n in range(sends_each):
                    await _send(result, layer, tenant_id, targets[i], ids[i], f"{tag}-{i}-{n}")

        start = time.perf_counter()
        await asyncio.gather(*(sender(i) for i in range(senders)))
        result.seconds = time.perf_counter() - start
        return result

    assert hot.id is not None
    hot_result = await run([hot.id] * senders, "hot")
    spread_result = await run([c.id for c in spread if c.id is not None], "spread")
    return hot_result, spread_result


async def mixed_tenants(
    layer: DataLayer,
    tenant_ids: list[str],
    *,
    tasks: int = 200,
    operations_each: int = 10,
    seed: int = 17,
) -> LoadResult:
    """`tasks` tasks over `tenant_ids`, each running a random mix of reads and writes.

    Sends (with client ids), edits (conditional on `__v`), reactions, read marks, history
    pages and unread counts. Every read's documents are checked to name the task's tenant.
    """
    result = LoadResult()
    setup: dict[str, tuple[list[PydanticObjectId], PydanticObjectId]] = {}
    for tenant_id in tenant_ids:
        async with tenant_scope(tenant_id, layer=layer):
            people = await Factories(layer).users(4)
            ids = [p.id for p in people if p.id is not None]
            group = await Factories(layer).group_conversation(people)
            assert group.id is not None
            setup[tenant_id] = (ids, group.id)

    def check(tenant_id: str, documents: Any) -> None:
        for document in documents:
            if getattr(document, "tenant_id", tenant_id) != tenant_id:
                result.foreign_reads.append(f"{tenant_id} read {document!r}")

    async def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        tenant_id = tenant_ids[index % len(tenant_ids)]
        ids, conversation = setup[tenant_id]
        mine: list[Any] = []
        async with tenant_scope(tenant_id, layer=layer):
            messages = layer.repo(MessageRepository)
            for n in range(operations_each):
                user = rng.choice(ids)
                kind = rng.choices(
                    ["send", "edit", "react", "read_mark", "history", "unread"],
                    weights=[4, 1, 1, 1, 2, 1],
                )[0]
                try:
                    if kind == "send" or (kind in ("edit", "react") and not mine):
                        before = len(result.acks)
                        await _send(result, layer, tenant_id, conversation, user, f"m-{index}-{n}")
                        if len(result.acks) > before:
                            mine.append(result.acks[-1])
                    elif kind == "edit":
                        ack = rng.choice(mine)
                        current = await messages.get(ack.message_id)
                        check(tenant_id, [current])
                        await _timed(
                            result,
                            "edit",
                            messages.edit(current, f"edited {index}-{n}", actor=ack.sender_id),
                        )
                    elif kind == "react":
                        ack = rng.choice(mine)
                        await _timed(
                            result,
                            "react",
                            layer.repo(ReactionRepository).toggle(ack.message_id, user, "+1"),
                        )
                    elif kind == "read_mark":
                        await _timed(
                            result,
                            "read_mark",
                            layer.repo(ReadReceiptRepository).mark_read(conversation, user, 10**6),
                        )
                    elif kind == "history":
                        page = await _timed(
                            result, "history", messages.history(conversation, limit=20)
                        )
                        check(tenant_id, page)
                    else:
                        await _timed(
                            result,
                            "unread",
                            layer.repo(ConversationRepository).count_unread(conversation, user),
                        )
                except (RetryableError, VersionConflict):
                    continue  # counted as a failure of its operation; the run goes on

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    result.seconds = time.perf_counter() - start
    return result
