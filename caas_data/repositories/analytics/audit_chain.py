"""Reading a tenant's audit chain: its anchor, its trail, and the verification of both.

`AuditLogRepository` (audit.py) extends this with appends and retention, which write the
chain; everything here only reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pymongo import ASCENDING

from caas_data.documents.analytics import (
    AUDIT_GENESIS_HASH,
    PLATFORM_AUDIT_TENANT,
    AuditAnchor,
    AuditLog,
)
from caas_data.driver_errors import translate_driver_errors
from caas_data.errors import DocumentValidationError
from caas_data.repositories.base import Page, Repository
from caas_data.repositories.owned import owned_scope, scope_tenant
from caas_data.tenancy.guard import GuardedCollection

if TYPE_CHECKING:
    pass

__all__ = ["AuditChainReader", "ChainReport", "chain_tenant"]

_VERIFY_BATCH = 500
_VERIFY_ATTEMPTS = 3  # re-reads when the anchor moves under a verification


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


def chain_tenant(tenant_id: str | None) -> str:
    """The chain a call acts on: the platform's own, or a tenant's (the scope's by default)."""
    if tenant_id == PLATFORM_AUDIT_TENANT:
        return tenant_id
    return scope_tenant(tenant_id)


class AuditChainReader(Repository[AuditLog]):
    """The reads of the audit chain: anchor, trail and verification."""

    document_type = AuditLog

    # -- the anchor -----------------------------------------------------------------------

    def _anchors(self) -> GuardedCollection:
        # Anchors are protected documents: only this repository writes them.
        return self._layer.collection(AuditAnchor)._privileged()

    async def anchor(self, tenant_id: str | None = None) -> AuditAnchor | None:
        """The tenant's chain anchor (the scope's tenant by default), None before any append."""
        tenant = chain_tenant(tenant_id)
        async with owned_scope(self._layer, tenant):
            return await self._read_anchor(tenant)

    async def _read_anchor(self, tenant: str) -> AuditAnchor | None:
        raw = await self._anchors().find_one({"tenant_id": tenant})
        if raw is None:
            return None
        with translate_driver_errors(tenant_id=tenant, document_type=AuditAnchor):
            return AuditAnchor.model_validate(raw)

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
        tenant = chain_tenant(tenant_id)
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
        tenant = chain_tenant(tenant_id)
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
