"""Retention: apply each tenant's `retention` settings to its chat content.

`TenantSettings.retention` says how long messages and media are kept and how long soft-deleted
groups, posts and files can still be restored. `RetentionService.apply()` enforces that for the
scope's tenant; `apply_all()` walks the tenant directory (a platform job in a `system_scope()`)
and runs each tenant in its own scope, so a job can never purge one tenant with another's
settings. Purges go through the repositories' own `purge` methods (reactions with their
messages, metadata with its files, members with their groups), so a run that stops half-way
leaves nothing orphaned and can simply be run again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from caas_data.documents.base import utcnow
from caas_data.documents.platform import RETIRED_CLIENT_STATUSES, SaasClient
from caas_data.driver_errors import translate_driver_errors
from caas_data.errors import CaasDataError, TenantContextMissing, TenantMismatch
from caas_data.repositories.base import Repository
from caas_data.repositories.saas.groups import GroupRepository
from caas_data.repositories.saas.media import MediaFileRepository, PostRepository
from caas_data.repositories.saas.messaging import MessageRepository
from caas_data.repositories.saas.settings import TenantSettingsRepository
from caas_data.tenancy.context import current_scope, tenant_scope
from caas_data.tenancy.cutoffs import retention_cutoff

if TYPE_CHECKING:
    from caas_data.layer import DataLayer

__all__ = ["RetentionReport", "RetentionService"]

_BATCH = 200


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one tenant's retention run removed for good (counts per collection)."""

    tenant_id: str
    messages: int = 0
    files: int = 0
    posts: int = 0
    groups: int = 0
    error: CaasDataError | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        """False when the run for this tenant stopped on an error (see `error`)."""
        return self.error is None


class RetentionService:
    """Enforces the retention settings; `layer.retention` style: `RetentionService(layer)`."""

    def __init__(self, layer: DataLayer) -> None:
        self._layer = layer

    async def apply(self, *, now: datetime | None = None) -> RetentionReport:
        """Apply the scope tenant's retention settings as of `now` (default: the clock).

        Raises:
            TenantContextMissing: not inside a tenant scope.
            DocumentValidationError: `now` is naive or in the future (before any I/O).
        """
        scope = current_scope()
        if scope is None or scope.tenant_id is None:
            raise TenantContextMissing("retention runs inside a tenant scope (or use apply_all)")
        now = _aware(now)
        settings = (await self._layer.repo(TenantSettingsRepository).get_settings()).retention
        messages = files = 0
        if settings.message_retention_days is not None:
            cutoff = now - timedelta(days=settings.message_retention_days)
            messages = await self._layer.repo(MessageRepository).purge_older_than(cutoff)
        if settings.media_retention_days is not None:
            cutoff = now - timedelta(days=settings.media_retention_days)
            files = await self._purge(
                self._layer.repo(MediaFileRepository), {"created_at": {"$lt": cutoff}}
            )
        deleted_cutoff = now - timedelta(days=settings.deleted_content_retention_days)
        expired = {"deleted_at": {"$ne": None, "$lt": deleted_cutoff}}
        files += await self._purge(self._layer.repo(MediaFileRepository), expired)
        posts = await self._purge(self._layer.repo(PostRepository), expired)
        groups = await self._purge(self._layer.repo(GroupRepository), expired)
        return RetentionReport(
            scope.tenant_id, messages=messages, files=files, posts=posts, groups=groups
        )

    async def apply_all(self, *, now: datetime | None = None) -> list[RetentionReport]:
        """Apply retention for every tenant in the directory, each in its own scope.

        A tenant whose run fails is reported (`report.ok` is False) and the others still run.
        Call it outside any tenant scope (a platform job).

        Raises:
            TenantMismatch: called inside a tenant scope.
            DocumentValidationError: `now` is naive or in the future (before any I/O).
        """
        scope = current_scope()
        if scope is not None and scope.tenant_id is not None:
            raise TenantMismatch(
                "apply_all walks every tenant: run it outside a tenant scope",
                tenant_id=scope.tenant_id,
            )
        now = _aware(now)
        directory = self._layer.unguarded_platform_collection(
            SaasClient, why="apply_all walks the whole directory"
        )
        # A raw cursor: its fetch is translated here, or a dropped connection would end the
        # walk with a driver error instead of a RetryableError.
        with translate_driver_errors(document_type=SaasClient):
            tenant_ids = [
                raw["tenant_id"]
                for raw in await directory.find(
                    # Deprovisioned tenants' tombstones have no data left to retain.
                    {"status": {"$nin": sorted(RETIRED_CLIENT_STATUSES)}},
                    {"tenant_id": 1},
                    sort=[("tenant_id", 1)],
                ).to_list()
            ]
        reports = []
        for tenant_id in tenant_ids:
            try:
                async with tenant_scope(tenant_id, layer=self._layer):
                    reports.append(await self.apply(now=now))
            except CaasDataError as exc:
                reports.append(RetentionReport(tenant_id, error=exc))
        return reports

    @staticmethod
    async def _purge(repository: Repository[Any], query: dict[str, Any]) -> int:
        """Purge matching documents one by one through the repository (oldest first)."""
        collection = repository.collection(include_deleted=True)
        total = 0
        while True:
            batch = await collection.find(
                query, {"_id": 1}, sort=[("created_at", 1)], limit=_BATCH
            ).to_list(_BATCH)
            for raw in batch:
                await repository.purge(raw["_id"])
                total += 1
            if len(batch) < _BATCH:
                return total


def _aware(now: datetime | None) -> datetime:
    """`now`, checked like any retention cutoff: a `now` in the future would purge early."""
    return utcnow() if now is None else retention_cutoff(now, name="now")
