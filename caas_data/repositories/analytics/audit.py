"""The audit trail: per-tenant hash chains, their anchors, verification and retention.

Each chain has an `AuditAnchor`, stored apart from the entries: its head (seq, hash), its
entry count and, after retention, the seq and `prev_hash` where the retained part starts.
Appending reads the anchor, inserts `head_seq + 1` with the head's hash as `prev_hash` and
moves the head, all in one transaction (crash-safe: both or neither commit). Retention
deletes the oldest entries and moves the start in one transaction too. So `verify_chain`
detects an entry removed at either end, in the middle, or edited, and tells a chain that
retention emptied from one that was wiped.

The unique `(tenant_id, seq)` index and the conditional anchor update let exactly one of two
concurrent appends win; the loser's transaction conflicts and is re-run. Within one process,
appends to one chain queue on a lock rather than race.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from beanie import PydanticObjectId
from pymongo import ASCENDING

from caas_data.documents.analytics import AuditAnchor, AuditLog
from caas_data.documents.base import BaseDocument, utcnow
from caas_data.documents.writes import dump_document
from caas_data.driver_errors import translate_driver_errors
from caas_data.engine.clusters import HOME_CLUSTER
from caas_data.engine.sessions import current_session
from caas_data.engine.transactions import in_transaction, transaction
from caas_data.errors import (
    AuditChainBroken,
    DocumentValidationError,
    DuplicateError,
    RetryableError,
)
from caas_data.repositories.analytics.audit_chain import AuditChainReader, chain_tenant
from caas_data.repositories.owned import owned_scope
from caas_data.tenancy.cutoffs import retention_cutoff, retention_limit

if TYPE_CHECKING:
    from caas_data.layer import DataLayer

__all__ = ["AuditLogRepository", "AuditRecord", "chain_transaction"]

D = TypeVar("D", bound=BaseDocument)
T = TypeVar("T")

_APPEND_ATTEMPTS = 200  # contention only: each failed attempt means another append won
_AUDITED_TRANSACTION_ATTEMPTS = 50
_RETENTION_BATCH = 500  # entries deleted per transaction
# The unique keys two racing appends collide on: the chain's seq, or the same idempotency key.
_CHAIN_KEYS = frozenset({"tenant_id", "seq", "idempotency_key"})
# What must match for a repeated idempotency key to be the same append.
_IDEMPOTENT_FIELDS = ("action", "actor", "target_type", "target_id", "details")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What an audited write appends: the action and what it was done to."""

    action: str
    tenant_id: str
    target_type: str | None = None
    target_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


class _ChainMoved(RetryableError):
    """Another append or retention moved the anchor between our read and our write."""


def _chain_key(tenant: str) -> str:
    return f"audit:{tenant}"


async def chain_transaction(
    layer: DataLayer, chain: str | None, body: Callable[[], Awaitable[T]]
) -> T:
    """Run `body`, which appends to `chain`, in one transaction (joining a running one).

    Every such transaction writes the chain's next entry, so they are serialized per chain.
    """
    key = None if chain is None else _chain_key(chain)
    # Audit chains live in the platform databases: on the home cluster.
    return await transaction(
        layer, body, hot_key=key, max_attempts=_AUDITED_TRANSACTION_ATTEMPTS, cluster=HOME_CLUSTER
    )


class AuditLogRepository(AuditChainReader):
    """Append to, verify and apply retention to tenants' audit chains.

    Entries are never updated. Each chain has an `AuditAnchor` (head, count, retained start)
    written in the same transaction as every append and every retention delete: a crash
    leaves both or neither, so the anchor always describes the committed entries.
    """

    document_type = AuditLog

    async def append(
        self,
        action: str,
        *,
        tenant_id: str | None = None,
        actor: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> AuditLog:
        """Add an entry at the end of the tenant's chain (the scope's tenant by default).

        `tenant_id=PLATFORM_AUDIT_TENANT` writes to the platform's own chain (system scope).
        The entry and the anchor's new head commit in one transaction (joining a running one).
        An append that raised `RetryableError` may have landed: repeated with the same
        `idempotency_key` it returns the first entry instead of recording the event twice.

        Raises:
            DuplicateError: the key was used for a different entry.
        """
        tenant = chain_tenant(tenant_id)
        fields: dict[str, Any] = {
            "tenant_id": tenant,
            "action": action,
            "actor": actor,
            "target_type": target_type,
            "target_id": target_id,
            "details": dict(details or {}),
            "idempotency_key": idempotency_key,
        }
        async with owned_scope(self._layer, tenant):
            if in_transaction():
                # One attempt: a concurrent append makes the transaction conflict, and its
                # owner re-runs all of it (the entry must commit with the write it records).
                return await self._earlier(fields) or await self._try_append(fields)
            for attempt in range(_APPEND_ATTEMPTS):
                earlier = await self._earlier(fields)
                if earlier is not None:
                    return earlier
                try:
                    return await chain_transaction(
                        self._layer, tenant, lambda: self._try_append(fields)
                    )
                except (DuplicateError, _ChainMoved) as exc:
                    if isinstance(exc, DuplicateError) and not set(exc.key) <= _CHAIN_KEYS:
                        raise  # not a lost race: retrying would not help
                    # Another writer won this seq or this key: look again, then retry.
                    await asyncio.sleep(random.uniform(0, 0.001 * 2 ** min(attempt, 8)))
        raise DuplicateError(
            f"audit append for {tenant!r} lost {_APPEND_ATTEMPTS} races in a row",
            key={"tenant_id": tenant},
            tenant_id=tenant,
            document_type=AuditLog,
        )

    async def _earlier(self, fields: Mapping[str, Any]) -> AuditLog | None:
        """The entry an earlier append with the same idempotency key recorded, if any."""
        key = fields["idempotency_key"]
        if key is None:
            return None
        raw = await self.collection().find_one(
            {"tenant_id": fields["tenant_id"], "idempotency_key": {"$eq": key, "$type": "string"}}
        )
        if raw is None:
            return None
        earlier = self._load(raw)
        same = all(getattr(earlier, name) == fields[name] for name in _IDEMPOTENT_FIELDS)
        if not same:
            raise DuplicateError(
                f"audit idempotency key {key!r} was already used for another entry "
                f"(seq {earlier.seq}, action {earlier.action!r})",
                key={"idempotency_key": key},
                tenant_id=fields["tenant_id"],
                document_type=AuditLog,
            )
        return earlier

    async def _try_append(self, fields: Mapping[str, Any]) -> AuditLog:
        """Insert the entry after the anchor's head and move the head (in a transaction)."""
        tenant = fields["tenant_id"]
        anchor, stored = await self._anchor_for_write(tenant)
        collection = self.collection()
        head = None
        if anchor.head_seq > 0:
            head = await collection.find_one(
                {"tenant_id": tenant, "seq": anchor.head_seq}, {"created_at": 1}
            )
        now = utcnow()
        entry = self._validate(
            {
                **fields,
                "seq": anchor.head_seq + 1,
                "prev_hash": anchor.head_hash,
                # Never before the previous entry: time order follows chain order.
                "created_at": now if head is None else max(now, head["created_at"]),
            }
        )
        entry.id = PydanticObjectId()
        entry.hash = entry.compute_hash()
        await collection.insert_one(dump_document(entry))
        moved = {
            "head_seq": entry.seq,
            "head_hash": entry.hash,
            "entry_count": anchor.entry_count + 1,
        }
        await self._save_anchor(anchor, stored, moved)
        return entry

    async def _anchor_for_write(self, tenant: str) -> tuple[AuditAnchor, bool]:
        """The chain's anchor and whether it is stored; adopted from the entries if missing.

        A chain written before anchors existed is adopted as it stands (`adopted_seq` says
        where), so `verify_chain` can say its older part rests on its links alone.
        """
        anchor = await self._read_anchor(tenant)
        if anchor is not None:
            return anchor, True
        collection = self.collection()
        projection = {"seq": 1, "hash": 1, "prev_hash": 1}
        last = await collection.find_one({"tenant_id": tenant}, projection, sort=[("seq", -1)])
        if last is None:
            return AuditAnchor(tenant_id=tenant), False
        first = await collection.find_one({"tenant_id": tenant}, projection, sort=[("seq", 1)])
        first = first or last  # an entry deleted in between: the walk will report it
        return (
            AuditAnchor(
                tenant_id=tenant,
                head_seq=last["seq"],
                head_hash=last["hash"],
                entry_count=await collection.count_documents({"tenant_id": tenant}),
                start_seq=first["seq"],
                start_prev_hash=first["prev_hash"],
                adopted_seq=last["seq"],
            ),
            False,
        )

    async def _save_anchor(
        self, anchor: AuditAnchor, stored: bool, changes: Mapping[str, Any]
    ) -> None:
        """Write the anchor's new state, only if nobody moved it since `anchor` was read."""
        anchors = self._anchors()
        if not stored:
            first = anchor.model_copy(update=dict(changes))
            first.id = PydanticObjectId()
            await anchors.insert_one(dump_document(first))
            return
        result = await anchors.update_one(
            {
                "tenant_id": anchor.tenant_id,
                "head_seq": anchor.head_seq,
                "start_seq": anchor.start_seq,
            },
            {"$set": dict(changes)},
        )
        if result.matched_count != 1:
            raise _ChainMoved("the audit chain moved during this write", tenant_id=anchor.tenant_id)

    # -- retention ------------------------------------------------------------------------

    async def purge_older_than(
        self, cutoff: datetime, *, tenant_id: str | None = None, limit: int | None = None
    ) -> int:
        """Retention: delete the chain's oldest entries created before `cutoff`.

        Each batch is removed in one transaction with the anchor's start moved past it, so
        `verify_chain` still vouches for what is left. With `limit`, at most that many go.
        Returns how many entries were deleted.

        Raises:
            DocumentValidationError: `cutoff` is naive or in the future, or `limit` is bad
                (before any I/O).
            AuditChainBroken: the entries to delete do not check out against the anchor;
                nothing is deleted (deleting them would erase the evidence).
        """
        cutoff = retention_cutoff(cutoff)
        remaining = retention_limit(limit)
        tenant = chain_tenant(tenant_id)
        total = 0
        async with owned_scope(self._layer, tenant):
            while remaining is None or remaining > 0:
                batch = _RETENTION_BATCH if remaining is None else min(remaining, _RETENTION_BATCH)
                removed = await self._retain_batch(tenant, cutoff, batch)
                total += removed
                if remaining is not None:
                    remaining -= removed
                if removed < batch:
                    break
        return total

    async def _retain_batch(self, tenant: str, cutoff: datetime, batch: int) -> int:
        async def body() -> int:
            return await self._try_retain(tenant, cutoff, batch)

        if in_transaction():
            return await body()
        for attempt in range(_APPEND_ATTEMPTS):
            try:
                return await chain_transaction(self._layer, tenant, body)
            except _ChainMoved:
                await asyncio.sleep(random.uniform(0, 0.001 * 2 ** min(attempt, 8)))
        raise RetryableError(
            f"audit retention for {tenant!r} kept losing to appends", tenant_id=tenant
        )

    async def _try_retain(self, tenant: str, cutoff: datetime, batch: int) -> int:
        """Delete up to `batch` entries from the chain's start, checking each (transaction)."""
        anchor, stored = await self._anchor_for_write(tenant)
        raws = (
            await self.collection()
            .find(
                {"tenant_id": tenant, "seq": {"$gte": anchor.start_seq, "$lte": anchor.head_seq}},
                sort=[("seq", ASCENDING)],
                limit=batch,
            )
            .to_list(batch)
        )
        doomed: list[AuditLog] = []
        for raw in raws:
            try:
                entry = self._load(raw)
            except DocumentValidationError as exc:
                raise self._unsafe_to_retain(tenant, raw.get("seq"), exc.message) from exc
            if entry.created_at >= cutoff:
                break  # created_at follows seq: everything after is newer too
            previous = doomed[-1] if doomed else None
            reason = self._unlinked(entry, previous, anchor) or self._broken(entry, previous)
            if reason is not None:
                raise self._unsafe_to_retain(tenant, entry.seq, reason)
            doomed.append(entry)
        if not doomed:
            return 0
        last = doomed[-1]
        # unguarded: the guard allows append-only collections only a delete by date, which
        # cannot cut exactly at a seq when entries share a millisecond; this deletes the
        # checked seq range of this tenant's chain, in the running transaction.
        raw_entries = self._layer.unguarded_platform_collection(
            AuditLog, why="seq-exact retention of a checked range of one tenant's chain"
        )
        with translate_driver_errors(tenant_id=tenant, document_type=AuditLog):
            result = await raw_entries.delete_many(
                {"tenant_id": tenant, "seq": {"$gte": doomed[0].seq, "$lte": last.seq}},
                session=current_session(),
            )
        if result.deleted_count != len(doomed):
            raise _ChainMoved("the audit chain changed during retention", tenant_id=tenant)
        await self._save_anchor(
            anchor,
            stored,
            {
                "start_seq": last.seq + 1,
                "start_prev_hash": last.hash,
                "entry_count": max(anchor.entry_count - len(doomed), 0),
                "removed": anchor.removed + len(doomed),
            },
        )
        return len(doomed)

    @staticmethod
    def _unsafe_to_retain(tenant: str, seq: Any, reason: str) -> AuditChainBroken:
        return AuditChainBroken(
            f"audit chain of {tenant!r} is broken at seq {seq}: {reason}; retention deletes "
            "only entries that check out (see verify_chain)",
            broken_seq=seq if isinstance(seq, int) else None,
            tenant_id=tenant,
            document_type=AuditLog,
        )
