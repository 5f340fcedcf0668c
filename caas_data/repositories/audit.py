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
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from beanie import PydanticObjectId
from pymongo import ASCENDING

from caas_data.documents.analytics import (
    AUDIT_GENESIS_HASH,
    PLATFORM_AUDIT_TENANT,
    AuditAnchor,
    AuditLog,
)
from caas_data.documents.base import BaseDocument, utcnow
from caas_data.engine.cutoffs import retention_cutoff, retention_limit
from caas_data.engine.guard import GuardedCollection
from caas_data.engine.registry import spec_of
from caas_data.engine.sessions import current_session
from caas_data.engine.transactions import in_transaction, transaction
from caas_data.engine.writes import dump_document
from caas_data.errors import (
    AuditChainBroken,
    DocumentValidationError,
    DuplicateError,
    RetryableError,
    UnsafeOperation,
    translate_driver_errors,
)
from caas_data.repositories.base import Page, Repository
from caas_data.repositories.owned import owned_scope, scope_tenant
from caas_data.tenancy.context import current_scope
from caas_data.tenancy.tiers import HOME_CLUSTER

if TYPE_CHECKING:
    from caas_data.engine.layer import DataLayer

__all__ = [
    "AuditLogRepository",
    "AuditRecord",
    "AuditedRepository",
    "ChainReport",
    "chain_transaction",
]

D = TypeVar("D", bound=BaseDocument)
T = TypeVar("T")

_APPEND_ATTEMPTS = 200  # contention only: each failed attempt means another append won
_AUDITED_TRANSACTION_ATTEMPTS = 50
_VERIFY_BATCH = 500
_VERIFY_ATTEMPTS = 3  # re-reads when the anchor moves under a verification
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


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Result of `verify_chain`: `ok`, or the first broken link and why.

    `note` tells what an ok report rests on when that is not the whole chain (e.g. retention
    removed every entry, or the anchor was adopted from a chain written before anchors).
    """

    tenant_id: str
    checked: int
    first_seq: int | None = None
    last_seq: int | None = None
    broken_seq: int | None = None
    reason: str | None = None
    note: str | None = None

    @property
    def ok(self) -> bool:
        """True when every entry checked out against its neighbours and the anchor."""
        return self.broken_seq is None and self.reason is None


class _ChainMoved(RetryableError):
    """Another append or retention moved the anchor between our read and our write."""


def _chain_tenant(tenant_id: str | None) -> str:
    if tenant_id == PLATFORM_AUDIT_TENANT:
        return tenant_id
    return scope_tenant(tenant_id)


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


class AuditLogRepository(Repository[AuditLog]):
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
        tenant = _chain_tenant(tenant_id)
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

    # -- the anchor -----------------------------------------------------------------------

    def _anchors(self) -> GuardedCollection:
        # Anchors are protected documents: only this repository writes them.
        return self._layer.collection(AuditAnchor)._privileged()

    async def anchor(self, tenant_id: str | None = None) -> AuditAnchor | None:
        """The tenant's chain anchor (the scope's tenant by default), None before any append."""
        tenant = _chain_tenant(tenant_id)
        async with owned_scope(self._layer, tenant):
            return await self._read_anchor(tenant)

    async def _read_anchor(self, tenant: str) -> AuditAnchor | None:
        raw = await self._anchors().find_one({"tenant_id": tenant})
        if raw is None:
            return None
        with translate_driver_errors(tenant_id=tenant, document_type=AuditAnchor):
            return AuditAnchor.model_validate(raw)

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

    async def delete_older_than(
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
        tenant = _chain_tenant(tenant_id)
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

    # -- reading ----------------------------------------------------------------------------

    async def trail(
        self,
        *,
        tenant_id: str | None = None,
        limit: int = 100,
        after: str | None = None,
        newest_first: bool = False,
    ) -> Page[AuditLog]:
        """One page of a tenant's entries in chain order (or newest first)."""
        tenant = _chain_tenant(tenant_id)
        async with owned_scope(self._layer, tenant):
            return await self.find(
                {"tenant_id": tenant},
                sort="-seq" if newest_first else "seq",
                limit=limit,
                after=after,
            )

    async def verify_chain(self, tenant_id: str | None = None) -> ChainReport:
        """Check every entry's hash and link, and the chain's ends against its anchor.

        Detected and reported (not ok, with a reason): an edited entry, a missing entry in
        the middle, entries missing at the oldest end (other than by retention, which moves
        the anchor's start) or at the newest end, entries written around the layer, and a
        chain with entries but no anchor. A chain whose entries retention removed entirely
        is ok, and the report's `note` says so.
        """
        tenant = _chain_tenant(tenant_id)
        async with owned_scope(self._layer, tenant):
            report = ChainReport(tenant, 0)
            for _ in range(_VERIFY_ATTEMPTS):
                anchor = await self._read_anchor(tenant)
                report = await self._verify(tenant, anchor)
                if report.ok or await self._read_anchor(tenant) == anchor:
                    return report
                # The anchor moved while we read (an append, a retention run): read again.
            return report

    async def _verify(self, tenant: str, anchor: AuditAnchor | None) -> ChainReport:
        collection = self.collection()
        if anchor is None:
            stray = await collection.find_one({"tenant_id": tenant}, {"seq": 1}, sort=[("seq", 1)])
            if stray is None:
                return ChainReport(tenant, 0)  # nothing was ever written
            return ChainReport(
                tenant,
                0,
                broken_seq=stray["seq"],
                reason="the chain has entries but no anchor (the anchor was removed, or the "
                "chain predates anchors: its next append adopts it)",
            )
        checked = 0
        first: int | None = None
        previous: AuditLog | None = None
        while True:
            low = anchor.start_seq if previous is None else previous.seq + 1
            raws = await collection.find(
                {"tenant_id": tenant, "seq": {"$gte": low, "$lte": anchor.head_seq}},
                sort=[("seq", ASCENDING)],
                limit=_VERIFY_BATCH,
            ).to_list(_VERIFY_BATCH)
            for raw in raws:
                try:
                    entry = self._load(raw)
                except DocumentValidationError as exc:
                    seq = raw.get("seq")
                    invalid = f"entry no longer fits the schema: {exc.message}"
                    return ChainReport(tenant, checked, first, seq, seq, invalid)
                reason = self._unlinked(entry, previous, anchor) or self._broken(entry, previous)
                if reason is not None:
                    return ChainReport(tenant, checked, first, entry.seq, entry.seq, reason)
                first = entry.seq if first is None else first
                previous = entry
                checked += 1
            if len(raws) < _VERIFY_BATCH:
                break
        report = self._against_head(tenant, anchor, checked, first, previous)
        if not report.ok:
            return report
        return await self._outsiders(tenant, anchor, report)

    async def _outsiders(
        self, tenant: str, anchor: AuditAnchor, report: ChainReport
    ) -> ChainReport:
        """`report`, unless an entry lies outside the anchor's [start, head] range."""
        outside = await self.collection().find_one(
            {
                "tenant_id": tenant,
                "$or": [{"seq": {"$lt": anchor.start_seq}}, {"seq": {"$gt": anchor.head_seq}}],
            },
            {"seq": 1},
            sort=[("seq", ASCENDING)],
        )
        if outside is None:
            return report
        seq = outside.get("seq")
        if isinstance(seq, int) and seq > anchor.head_seq:
            now = await self._read_anchor(tenant)
            if now is not None and now.head_seq >= seq:
                return report  # appended while we verified: the next verification covers it
            where = f"beyond the anchor's head (seq {anchor.head_seq})"
        else:
            where = f"before seq {anchor.start_seq}, where retention says the chain starts"
        return replace(
            report,
            broken_seq=seq,
            reason=f"entry {seq} lies {where}: written around the layer",
        )

    @staticmethod
    def _against_head(
        tenant: str,
        anchor: AuditAnchor,
        checked: int,
        first: int | None,
        last: AuditLog | None,
    ) -> ChainReport:
        """The walk found no broken link: does it end where the anchor says?"""
        if last is None:
            if anchor.head_seq < anchor.start_seq and anchor.entry_count == 0:
                note = None
                if anchor.removed:
                    note = (
                        f"retention removed all {anchor.removed} entries; the chain ends at "
                        f"seq {anchor.head_seq} and resumes after it"
                    )
                return ChainReport(tenant, 0, note=note)
            return ChainReport(
                tenant,
                0,
                broken_seq=anchor.start_seq,
                reason=f"all entries {anchor.start_seq}..{anchor.head_seq} are missing "
                f"(the anchor counts {anchor.entry_count}; retention removed only up to "
                f"seq {anchor.start_seq - 1})",
            )
        if last.seq < anchor.head_seq:
            return ChainReport(
                tenant,
                checked,
                first,
                last.seq,
                last.seq + 1,
                f"entries {last.seq + 1}..{anchor.head_seq} are missing at the newest end "
                f"(the anchor's head is seq {anchor.head_seq})",
            )
        if last.hash != anchor.head_hash:
            return ChainReport(
                tenant, checked, first, last.seq, last.seq,
                "the newest entry is not the one the anchor recorded (replaced)",
            )  # fmt: skip
        if checked != anchor.entry_count:
            return ChainReport(
                tenant, checked, first, last.seq, last.seq,
                f"the anchor counts {anchor.entry_count} entries, the chain holds {checked}",
            )  # fmt: skip
        note = None
        if anchor.adopted_seq is not None and first is not None and first <= anchor.adopted_seq:
            note = (
                f"entries up to seq {anchor.adopted_seq} predate the anchor: checked by "
                "their links only"
            )
        return ChainReport(tenant, checked, first, last.seq, note=note)

    @staticmethod
    def _unlinked(entry: AuditLog, previous: AuditLog | None, anchor: AuditAnchor) -> str | None:
        """Why the chain's oldest remaining entry is not where the anchor says it starts."""
        if previous is not None:
            return None
        if entry.seq != anchor.start_seq:
            return (
                f"entries {anchor.start_seq}..{entry.seq - 1} are missing at the oldest end "
                f"(retention removed only up to seq {anchor.start_seq - 1})"
            )
        if entry.prev_hash != anchor.start_prev_hash:
            return "the oldest entry does not link to where the anchor says the chain starts"
        return None

    @staticmethod
    def _broken(entry: AuditLog, previous: AuditLog | None) -> str | None:
        if entry.compute_hash() != entry.hash:
            return "entry content does not match its hash (modified after it was written)"
        if previous is None:
            if entry.seq == 1 and entry.prev_hash != AUDIT_GENESIS_HASH:
                return "first entry does not start from the genesis hash"
            return None
        if entry.seq != previous.seq + 1:
            return f"entries {previous.seq + 1}..{entry.seq - 1} are missing"
        if entry.prev_hash != previous.hash:
            return f"prev_hash does not match the hash of entry {previous.seq}"
        return None


class AuditedRepository(Repository[D]):
    """A repository whose every write appends an audit entry in the same transaction.

    Domain methods use `_audited()` with a specific action (`api_key.revoked`); the generic
    writes (`create`, `update`, `save`, `update_many`, `delete`, `purge`) are audited as
    `<audit_target>.created` etc., so no write of these documents goes unrecorded.
    """

    audit_target: ClassVar[str]

    def _audit_tenant(self, document: BaseDocument | None) -> str:
        """Whose chain records a write: the document's tenant, else the platform's."""
        tenant = getattr(document, "tenant_id", None)
        if isinstance(tenant, str):
            return tenant
        if not spec_of(self.document_type).tenant_keyed:
            return PLATFORM_AUDIT_TENANT
        scope = current_scope()
        if scope is None or scope.tenant_id is None:
            raise UnsafeOperation(
                f"bulk writes of audited {self.document_type.__name__} need a tenant scope, "
                "so the change is recorded in that tenant's chain",
                document_type=self.document_type,
            )
        return scope.tenant_id

    def _record(self, action: str, document: BaseDocument | None, **details: Any) -> AuditRecord:
        return AuditRecord(
            action=f"{self.audit_target}.{action}",
            tenant_id=self._audit_tenant(document),
            target_type=spec_of(self.document_type).name,
            target_id=None if document is None or document.id is None else str(document.id),
            details=details,
        )

    async def _audited(
        self,
        write: Callable[[], Awaitable[T]],
        describe: Callable[[T], AuditRecord | Iterable[AuditRecord]],
        *,
        actor: str | None = None,
    ) -> T:
        """Run `write` and append what `describe` says about its result, in one transaction."""
        audit = self._layer.repo(AuditLogRepository)

        async def body() -> T:
            result = await write()
            described = describe(result)
            records = [described] if isinstance(described, AuditRecord) else list(described)
            for record in records:
                await audit.append(
                    record.action,
                    tenant_id=record.tenant_id,
                    actor=actor,
                    target_type=record.target_type,
                    target_id=record.target_id,
                    details=record.details,
                )
            return result

        scope = current_scope()
        chain = scope.tenant_id if scope is not None else None
        if chain is None and not spec_of(self.document_type).tenant_keyed:
            chain = PLATFORM_AUDIT_TENANT
        return await chain_transaction(self._layer, chain, body)

    # -- the generic writes, audited ----------------------------------------------------

    async def create(self, document: D | Mapping[str, Any], *, actor: str | None = None) -> D:
        """`Repository.create`, with a `<target>.created` entry."""
        base = super().create
        return await self._audited(
            lambda: base(document), lambda d: self._record("created", d), actor=actor
        )

    async def create_many(
        self, documents: Iterable[D | Mapping[str, Any]], *, actor: str | None = None
    ) -> list[D]:
        """`Repository.create_many`, with one entry per document."""
        base = super().create_many
        items = list(documents)
        return await self._audited(
            lambda: base(items),
            lambda created: [self._record("created", d) for d in created],
            actor=actor,
        )

    async def update(self, document: D, /, *, actor: str | None = None, **changes: Any) -> D:
        """`Repository.update`, with a `<target>.updated` entry naming the changed fields."""
        base = super().update
        return await self._audited(
            lambda: base(document, **changes),
            lambda d: self._record("updated", d, fields=sorted(changes)),
            actor=actor,
        )

    async def save(self, document: D, *, actor: str | None = None) -> D:
        """`Repository.save`, with a `<target>.saved` entry."""
        base = super().save
        return await self._audited(
            lambda: base(document), lambda d: self._record("saved", d), actor=actor
        )

    async def update_many(
        self,
        filter: Mapping[str, Any],
        changes: Mapping[str, Any],
        *,
        include_deleted: bool = False,
        actor: str | None = None,
    ) -> int:
        """`Repository.update_many`, with one entry for the batch (fields and count)."""
        base = super().update_many
        record = self._record("bulk_updated", None)  # fails before writing if no chain fits
        return await self._audited(
            lambda: base(filter, changes, include_deleted=include_deleted),
            lambda count: AuditRecord(
                record.action,
                record.tenant_id,
                record.target_type,
                details={"fields": sorted(str(k) for k in changes), "count": count},
            ),
            actor=actor,
        )

    async def delete(
        self, document_or_id: Any, *, deleted_by: Any = None, actor: str | None = None
    ) -> None:
        """Delete (`purge` for these documents), with a `<target>.deleted` entry."""
        await self.purge(document_or_id, actor=actor)

    async def purge(self, document_or_id: Any, *, actor: str | None = None) -> None:
        """`Repository.purge`, with a `<target>.deleted` entry."""
        base = super().purge
        document = await self.get(document_or_id)
        await self._audited(
            lambda: base(document.id), lambda _: self._record("deleted", document), actor=actor
        )
