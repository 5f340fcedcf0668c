"""Invoices: editable drafts, then issued with a gap-free per-client number and frozen.

The number comes from a per-client counter (`OwnedCounterRepository`) in the same transaction
as the status change, so an aborted issue gives its number back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from caas_data.documents.base import utcnow
from caas_data.documents.billing import Invoice, InvoiceLine, InvoiceStatus
from caas_data.documents.writes import raise_write_miss
from caas_data.engine.clusters import HOME_CLUSTER
from caas_data.engine.transactions import transaction
from caas_data.errors import DocumentValidationError, NotFoundError
from caas_data.repositories.base import Repository, check_int
from caas_data.repositories.counters import OwnedCounterRepository
from caas_data.repositories.owned import owned_scope

__all__ = ["INVOICE_COUNTER", "InvoiceRepository"]

INVOICE_COUNTER = "invoice_number"
# Issues of one client all write its counter: under a burst each round commits one of them,
# so allow as many re-runs as a burst is long.
_ISSUE_ATTEMPTS = 50


class InvoiceRepository(Repository[Invoice]):
    """Invoices: editable drafts, then issued with the next number and immutable.

    After issue only the payment state moves (`mark_paid`, `void`); every other write of an
    issued invoice is refused. Enforced here, for repository writes; Beanie's own instance
    methods bypass repositories and are not used for invoices.
    """

    document_type = Invoice

    async def draft(
        self,
        lines: Iterable[InvoiceLine | Mapping[str, Any]],
        *,
        currency: str = "USD",
        subscription_id: Any = None,
        period_start: datetime | None = None,
        period_end: datetime | None = None,
    ) -> Invoice:
        """A new draft (no number yet) for the scope's tenant."""
        return await self.create(
            {
                "lines": list(lines),
                "currency": currency,
                "subscription_id": subscription_id,
                "period_start": period_start,
                "period_end": period_end,
            }
        )

    def _immutable(self, invoice: Invoice, what: str) -> DocumentValidationError:
        return DocumentValidationError(
            f"invoice {invoice.display_number or invoice.id} is {invoice.status} and immutable: "
            f"{what} is refused (void it and issue a new one)",
            fields=("status",),
            tenant_id=invoice.tenant_id,
            document_type=Invoice,
        )

    async def _stored_draft(self, invoice_id: Any, what: str) -> Invoice:
        stored = await self.get(invoice_id)
        if stored.status is not InvoiceStatus.DRAFT:
            raise self._immutable(stored, what)
        return stored

    async def update(self, document: Invoice, /, **changes: Any) -> Invoice:
        """Change a draft (its lines, dates...); status and number move only via `issue`."""
        for name in ("status", "number", "issued_at", "paid_at", "voided_at"):
            if name in changes:
                raise DocumentValidationError(
                    f"{name} changes only through issue(), mark_paid() or void()",
                    fields=(name,),
                    document_type=Invoice,
                )
        if document.status is not InvoiceStatus.DRAFT:
            raise self._immutable(document, "an update")
        # Issuing moves __v, so a stale draft copy fails the version check below.
        return await super().update(document, **changes)

    async def save(self, document: Invoice) -> Invoice:
        """Replace a stored draft (versioned); refused once the invoice is issued."""
        stored = None if document.id is None else await self.get_or_none(document.id)
        if stored is not None and stored.status is not InvoiceStatus.DRAFT:
            raise self._immutable(stored, "a save")
        if document.status is not InvoiceStatus.DRAFT:
            raise self._immutable(document, "a save")
        return await super().save(document)

    async def update_many(
        self,
        filter: Mapping[str, Any],
        changes: Mapping[str, Any],
        *,
        include_deleted: bool = False,
    ) -> int:
        """Bulk changes apply to drafts only; issued invoices are never matched."""
        query = {"$and": [self._check_filter(filter), {"status": InvoiceStatus.DRAFT.value}]}
        return await super().update_many(query, changes, include_deleted=include_deleted)

    async def purge(self, document_or_id: Any) -> None:
        """Delete a draft; issued invoices are kept for good."""
        stored = await self._stored_draft(document_or_id, "deleting it")
        result = await self.collection().delete_one(
            {"_id": stored.id, "status": InvoiceStatus.DRAFT.value}
        )
        if result.deleted_count != 1:
            raise self._immutable(await self.get(stored.id), "deleting it")

    async def issue(self, invoice_id: Any, *, due_in: timedelta = timedelta(days=30)) -> Invoice:
        """Give the draft the client's next invoice number and freeze it.

        The number comes from a per-client counter in the same transaction as the status
        change: an aborted issue gives its number back, so numbers have no gaps.
        """
        draft = await self._stored_draft(invoice_id, "issuing it again")
        if not draft.lines:
            raise DocumentValidationError(
                "an invoice needs at least one line", fields=("lines",), document_type=Invoice
            )

        async def write() -> Invoice:
            number = await self._layer.repo(OwnedCounterRepository).allocate(INVOICE_COUNTER)
            now = utcnow()
            # Numbering and settling are the invoice's own transitions: privileged writes.
            invoices = self.collection()._privileged()
            result = await invoices.update_one(
                {"_id": draft.id, "__v": draft.version, "status": InvoiceStatus.DRAFT.value},
                {
                    "$set": {
                        "status": InvoiceStatus.ISSUED.value,
                        "number": number,
                        "issued_at": now,
                        "due_at": now + due_in,
                    }
                },
            )
            if result.matched_count != 1:
                await raise_write_miss(self.collection(), Invoice, draft.id, draft.version)
            return await self.get(draft.id)

        async with owned_scope(self._layer, draft.tenant_id):
            return await transaction(
                self._layer,
                write,
                hot_key=f"invoice:{draft.tenant_id}",
                max_attempts=_ISSUE_ATTEMPTS,
                cluster=HOME_CLUSTER,
            )

    async def _settle(self, invoice_id: Any, status: InvoiceStatus, field: str) -> Invoice:
        document_id = self._id(invoice_id)
        invoices = self.collection()._privileged()
        result = await invoices.update_one(
            {"_id": document_id, "status": InvoiceStatus.ISSUED.value},
            {"$set": {"status": status.value, field: utcnow()}},
        )
        invoice = await self.get(document_id)
        if result.matched_count != 1:
            raise DocumentValidationError(
                f"invoice {invoice.display_number or invoice.id} is {invoice.status}: only an "
                f"issued invoice can become {status}",
                fields=("status",),
                document_type=Invoice,
            )
        return invoice

    async def mark_paid(self, invoice_id: Any) -> Invoice:
        """Record payment of an issued invoice (its content stays as issued)."""
        return await self._settle(invoice_id, InvoiceStatus.PAID, "paid_at")

    async def void(self, invoice_id: Any) -> Invoice:
        """Void an issued invoice; its number stays used (no gap, no reuse)."""
        return await self._settle(invoice_id, InvoiceStatus.VOID, "voided_at")

    async def get_by_number(self, number: int) -> Invoice:
        """The scope's invoice with this number; `NotFoundError` if none."""
        check_int("number", number, minimum=1, document_type=Invoice)
        found = await self.find_one({"number": number})
        if found is None:
            raise NotFoundError(f"no invoice number {number}", document_type=Invoice)
        return found
