"""Audited repositories: domain writes that append to the tenant's audit chain with them.

Each write and its audit entry commit in one transaction (`chain_transaction`), so the trail
never misses a change nor records one that did not happen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from caas_data.documents.analytics import PLATFORM_AUDIT_TENANT
from caas_data.documents.base import BaseDocument
from caas_data.documents.registry import spec_of
from caas_data.errors import UnsafeOperation
from caas_data.repositories.base import Repository
from caas_data.tenancy.context import current_scope

if TYPE_CHECKING:
    pass
from caas_data.repositories.analytics.audit import (
    AuditLogRepository,
    AuditRecord,
    chain_transaction,
)

__all__ = ["AuditedRepository"]

D = TypeVar("D", bound=BaseDocument)
T = TypeVar("T")


class AuditedRepository(Repository[D]):
    """A repository whose every write appends an audit entry in the same transaction.

    Domain methods use `_audited()` with a specific action (`api_key.revoked`); the generic
    writes (`create`, `update`, `update_by_id`, `upsert`, `save`, `update_many`, `delete`,
    `delete_many`, `purge`) are audited as `<audit_target>.created` etc., so no write of these
    documents goes unrecorded.
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

    async def delete(self, document_or_id: Any, *, actor: str | None = None) -> None:
        """Delete (`purge` for these documents), with a `<target>.deleted` entry."""
        await self.purge(document_or_id, actor=actor)

    async def purge(self, document_or_id: Any, *, actor: str | None = None) -> None:
        """`Repository.purge`, with a `<target>.deleted` entry."""
        base = super().purge
        document = await self.get(document_or_id)
        await self._audited(
            lambda: base(document.id), lambda _: self._record("deleted", document), actor=actor
        )

    async def update_by_id(
        self,
        document_id: Any,
        changes: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        actor: str | None = None,
    ) -> D:
        """`Repository.update_by_id`, with a `<target>.updated` entry naming the fields."""
        base = super().update_by_id
        return await self._audited(
            lambda: base(document_id, changes, expected_version=expected_version),
            lambda d: self._record("updated", d, fields=sorted(str(k) for k in changes)),
            actor=actor,
        )

    async def upsert(
        self,
        key: Mapping[str, Any],
        changes: Mapping[str, Any] | None = None,
        *,
        on_insert: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> D:
        """`Repository.upsert`, with a `<target>.upserted` entry naming the fields set."""
        base = super().upsert
        return await self._audited(
            lambda: base(key, changes, on_insert=on_insert),
            lambda d: self._record("upserted", d, fields=sorted(str(k) for k in changes or {})),
            actor=actor,
        )

    async def delete_many(
        self,
        filter: Mapping[str, Any],
        *,
        actor: str | None = None,
        purge: bool = False,
        match_all: bool = False,
    ) -> int:
        """`Repository.delete_many`, with one entry for the batch (count, purge or not)."""
        base = super().delete_many
        record = self._record("bulk_deleted", None)  # fails before writing if no chain fits
        return await self._audited(
            lambda: base(filter, actor=actor, purge=purge, match_all=match_all),
            lambda count: AuditRecord(
                record.action,
                record.tenant_id,
                record.target_type,
                details={"count": count, "purged": purge or not self._soft_delete},
            ),
            actor=actor,
        )
