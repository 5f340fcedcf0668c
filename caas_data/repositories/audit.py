"""The audit trail: per-tenant hash chains, their verification, and audited repositories.

Appending reads the chain's last entry and inserts `seq + 1` with its hash as `prev_hash`.
The unique `(tenant_id, seq)` index lets exactly one of two concurrent appends win; the other
re-reads and retries (outside a transaction), or its transaction conflicts and
`run_transaction` re-runs it. Either way the chain never forks. Within one process, appends to
one chain outside transactions queue on a lock rather than race.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from beanie import PydanticObjectId
from pymongo import ASCENDING

from caas_data.documents.analytics import AUDIT_GENESIS_HASH, PLATFORM_AUDIT_TENANT, AuditLog
from caas_data.documents.base import BaseDocument, utcnow
from caas_data.engine.registry import spec_of
from caas_data.engine.sessions import current_session
from caas_data.engine.writes import dump_document
from caas_data.errors import DocumentValidationError, DuplicateError, UnsafeOperation
from caas_data.repositories.base import Page, Repository
from caas_data.repositories.owned import (
    owned_scope,
    process_lock,
    scope_tenant,
    serialized_transaction,
)
from caas_data.tenancy.context import current_scope

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
    """Result of `verify_chain`: `ok`, or the first broken link and why."""

    tenant_id: str
    checked: int
    first_seq: int | None = None
    last_seq: int | None = None
    broken_seq: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when every entry checked out."""
        return self.broken_seq is None


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
    return await serialized_transaction(
        layer, key, body, max_attempts=_AUDITED_TRANSACTION_ATTEMPTS
    )


class AuditLogRepository(Repository[AuditLog]):
    """Append to and verify tenants' audit chains (entries are never updated or deleted)."""

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
        in_transaction = (session := current_session()) is not None and session.in_transaction
        async with owned_scope(self._layer, tenant):
            if in_transaction:
                # One attempt: a concurrent append makes the transaction conflict, and its
                # owner re-runs all of it (the entry must commit with the write it records).
                return await self._earlier(fields) or await self._try_append(fields)
            # Appends of one process queue up per chain instead of racing for the same seq;
            # the unique (tenant_id, seq) index still settles races between processes.
            async with process_lock(self._layer, _chain_key(tenant)):
                for attempt in range(_APPEND_ATTEMPTS):
                    earlier = await self._earlier(fields)
                    if earlier is not None:
                        return earlier
                    try:
                        return await self._try_append(fields)
                    except DuplicateError:
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
        """Read the chain's last entry and insert the next one after it."""
        collection = self.collection()
        last = await collection.find_one(
            {"tenant_id": fields["tenant_id"]},
            {"seq": 1, "hash": 1, "created_at": 1},
            sort=[("seq", -1)],
        )
        now = utcnow()
        entry = self._validate(
            {
                **fields,
                "seq": 1 if last is None else last["seq"] + 1,
                "prev_hash": AUDIT_GENESIS_HASH if last is None else last["hash"],
                # Never before the previous entry: time order follows chain order.
                "created_at": now if last is None else max(now, last["created_at"]),
            }
        )
        entry.id = PydanticObjectId()
        entry.hash = entry.compute_hash()
        await collection.insert_one(dump_document(entry))
        return entry

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
        """Recompute every entry's hash and link; report the first broken one.

        Retention removes the oldest entries, so the chain may start after seq 1: its first
        remaining entry is trusted as the anchor and checked for its own hash only.
        """
        tenant = _chain_tenant(tenant_id)
        checked = 0
        first: int | None = None
        previous: AuditLog | None = None
        async with owned_scope(self._layer, tenant):
            collection = self.collection()
            while True:
                query: dict[str, Any] = {"tenant_id": tenant}
                if previous is not None:
                    query["seq"] = {"$gt": previous.seq}
                raws = await collection.find(
                    query, sort=[("seq", ASCENDING)], limit=_VERIFY_BATCH
                ).to_list(_VERIFY_BATCH)
                for raw in raws:
                    try:
                        entry = self._load(raw)
                    except DocumentValidationError as exc:
                        seq = raw.get("seq")
                        invalid = f"entry no longer fits the schema: {exc.message}"
                        return ChainReport(tenant, checked, first, seq, seq, invalid)
                    reason = self._broken(entry, previous)
                    if reason is not None:
                        return ChainReport(tenant, checked, first, entry.seq, entry.seq, reason)
                    first = entry.seq if first is None else first
                    previous = entry
                    checked += 1
                if len(raws) < _VERIFY_BATCH:
                    last = previous.seq if previous is not None else None
                    return ChainReport(tenant, checked, first, last)

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
