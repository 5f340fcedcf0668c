"""Schema migrations: each tenant placement brought to the shapes the code declares.

A document class declares its history as `caas_schema_steps` (see `SchemaStep`): named,
ordered, idempotent forward functions, backward where the change can be undone. `migrate()`
runs them per tenant, at the tenant's placement (a Pro or Enterprise placement on its own; in
the shared collections each row is migrated once, by its own tenant's unit), with at most
`concurrency` tenants at a time. Every write goes through the tenant guard in the tenant's
scope; `schema_version`, a field the layer owns, is written through `_privileged()`.

Resuming: each document is rewritten together with its new `schema_version`, conditional on
the version it was read at, so a run killed between batches left every document either done or
untouched; running again finds what is left. The `schema_migrations` ledger records each step
per tenant and placement (running, done, failed, counts).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pymongo import UpdateOne

from caas_data.documents.base import BaseDocument, RawDocument, SchemaStep, upcast, utcnow
from caas_data.documents.platform import MigrationRecord, MigrationStatus, SaasClient
from caas_data.documents.registry import spec_of
from caas_data.driver_errors import translate_driver_errors
from caas_data.errors import CaasDataError, DocumentValidationError, SchemaVersionError
from caas_data.operations._common import (
    live_clients,
    placement_of,
    require_operator_scope,
    tenant_classes,
)

if TYPE_CHECKING:
    from caas_data.layer import DataLayer

__all__ = ["MigrationReport", "PlannedStep", "TenantMigration", "migrate", "plan_steps"]

ProgressCallback = Callable[[str, int], Awaitable[None] | None]
"""Called as `(tenant_id, documents_just_migrated)` after each batch."""

_KEPT = ("_id", "tenant_id")


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One step of one document class, in the order a placement runs them."""

    document_type: type[BaseDocument]
    step: SchemaStep
    backward: bool = False

    @property
    def target(self) -> int:
        """The `schema_version` documents have after this step."""
        return self.step.version - 1 if self.backward else self.step.version


@dataclass(slots=True)
class TenantMigration:
    """What one tenant's unit did (or, in a dry run, would do), per `collection:step`."""

    tenant_id: str
    placement: str
    pending: dict[str, int] = field(default_factory=dict)
    migrated: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


@dataclass(slots=True)
class MigrationReport:
    """The whole run: one entry per tenant; `failed` names the tenants that did not finish."""

    dry_run: bool
    tenants: list[TenantMigration]
    seconds: float

    @property
    def failed(self) -> dict[str, str]:
        """Tenant id -> its error, for every tenant whose unit did not finish."""
        return {t.tenant_id: t.error for t in self.tenants if t.error is not None}

    @property
    def migrated(self) -> int:
        """Documents rewritten in total."""
        return sum(sum(t.migrated.values()) for t in self.tenants)

    @property
    def pending(self) -> int:
        """Documents found below their step's version (what a dry run would migrate)."""
        return sum(sum(t.pending.values()) for t in self.tenants)


def plan_steps(
    layer: DataLayer, *, document: str | None = None, to_version: int | None = None
) -> list[PlannedStep]:
    """The steps a placement runs: every tenant class's, in version order.

    `to_version` (with `document`) goes back, through the backward functions, or stops early.

    Raises:
        DocumentValidationError: unknown document, or a backward step that does not exist.
    """
    classes = tenant_classes(layer)
    if document is not None:
        classes = [c for c in classes if spec_of(c).name == document]
        if not classes:
            raise DocumentValidationError(
                f"no tenant collection named {document!r}", fields=("document",)
            )
    elif to_version is not None:
        raise DocumentValidationError(
            "a target version needs the document it applies to", fields=("document",)
        )
    planned: list[PlannedStep] = []
    for document_type in classes:
        if spec_of(document_type).append_only:
            continue  # append-only rows are never rewritten: reads upcast them in memory
        current = document_type.caas_schema_version()
        target = current if to_version is None else to_version
        if not 1 <= target <= current:
            raise DocumentValidationError(
                f"{spec_of(document_type).name} has versions 1..{current}, not {target}",
                fields=("to_version",),
            )
        steps = sorted(document_type.caas_schema_steps, key=lambda s: s.version)
        planned += [PlannedStep(document_type, s) for s in steps if s.version <= target]
        for step in reversed(steps):
            if step.version <= target:
                break
            if step.backward is None:
                raise DocumentValidationError(
                    f"{spec_of(document_type).name} step {step.name!r} has no backward function",
                    fields=("to_version",),
                )
            planned.append(PlannedStep(document_type, step, backward=True))
    return planned


async def migrate(
    layer: DataLayer,
    *,
    dry_run: bool = False,
    tenants: Sequence[str] | None = None,
    document: str | None = None,
    to_version: int | None = None,
    concurrency: int = 8,
    batch_size: int = 500,
    on_progress: ProgressCallback | None = None,
) -> MigrationReport:
    """Bring every live tenant's documents to the declared versions (or to `to_version`).

    A tenant that fails is reported in `failed` and does not stop the others. A dry run only
    counts the documents each step would rewrite.

    Raises:
        TenantMismatch: called inside a tenant scope (an operator operation).
        DocumentValidationError: bad arguments (see `plan_steps`).
    """
    require_operator_scope("migrate", "*")
    if concurrency < 1 or batch_size < 1:
        raise DocumentValidationError(
            "concurrency and batch_size must be at least 1", fields=("concurrency", "batch_size")
        )
    plan = plan_steps(layer, document=document, to_version=to_version)
    clients = await live_clients(layer)
    if tenants is not None:
        wanted = set(tenants)
        clients = [c for c in clients if c.tenant_id in wanted]
    started = time.perf_counter()
    gate = asyncio.Semaphore(concurrency)

    async def unit(client: SaasClient) -> TenantMigration:
        async with gate:
            return await _migrate_tenant(layer, client, plan, dry_run, batch_size, on_progress)

    results = await asyncio.gather(*(unit(c) for c in clients))
    return MigrationReport(dry_run, list(results), time.perf_counter() - started)


async def _migrate_tenant(
    layer: DataLayer,
    client: SaasClient,
    plan: list[PlannedStep],
    dry_run: bool,
    batch_size: int,
    on_progress: ProgressCallback | None,
) -> TenantMigration:
    placement = placement_of(client)
    where = f"{placement.database}/{placement.collection_prefix}"
    result = TenantMigration(client.tenant_id, where)
    started = time.perf_counter()
    try:
        for planned in plan:
            key = f"{spec_of(planned.document_type).name}:{planned.step.name}"
            if planned.backward:
                key += ":backward"
            async with layer.tenant_scope(client.tenant_id):
                pending = await _pending(layer, planned)
            result.pending[key] = pending
            if dry_run or not pending:
                continue
            await _record(layer, result, planned, MigrationStatus.RUNNING, 0)
            done = 0
            try:
                while True:
                    async with layer.tenant_scope(client.tenant_id):
                        moved = await _batch(layer, planned, batch_size)
                    if not moved:
                        break
                    done += moved
                    if on_progress is not None:
                        answer = on_progress(client.tenant_id, moved)
                        if answer is not None:
                            await answer
            except CaasDataError as exc:
                result.migrated[key] = done
                await _record(layer, result, planned, MigrationStatus.FAILED, done, str(exc))
                raise
            result.migrated[key] = done
            await _record(layer, result, planned, MigrationStatus.DONE, done)
    except CaasDataError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - started
    return result


def _below(planned: PlannedStep) -> dict[str, Any]:
    """The documents this step still has to rewrite."""
    if planned.backward:
        return {"schema_version": {"$gte": planned.step.version}}
    return {"schema_version": {"$lt": planned.step.version}}


async def _pending(layer: DataLayer, planned: PlannedStep) -> int:
    collection = layer.collection(planned.document_type, include_deleted=True)
    return int(await collection.count_documents(_below(planned)))


async def _batch(layer: DataLayer, planned: PlannedStep, batch_size: int) -> int:
    """Rewrite up to `batch_size` documents; how many it rewrote (0: the step is done)."""
    collection = layer.collection(planned.document_type, include_deleted=True)._privileged()
    raws = await collection.find(_below(planned), sort=[("_id", 1)], limit=batch_size).to_list()
    requests = []
    for raw in raws:
        new = _converted(planned, raw)
        changed = {k: v for k, v in new.items() if k not in _KEPT and raw.get(k, _MISSING) != v}
        removed = {k: "" for k in raw if k not in new and k not in _KEPT}
        update: dict[str, Any] = {"$set": changed}
        if removed:
            update["$unset"] = removed
        # Conditional on the version it was read at: a concurrent run never applies a step twice.
        where = {"_id": raw["_id"], "schema_version": raw.get("schema_version")}
        requests.append(UpdateOne(where, update))
    if requests:
        # One round trip per batch; each document's rewrite is still atomic on its own.
        await collection.bulk_write(requests, ordered=False)
    return len(raws)


_MISSING = object()


def _converted(planned: PlannedStep, raw: RawDocument) -> RawDocument:
    document_type = planned.document_type
    try:
        if planned.backward:
            assert planned.step.backward is not None  # plan_steps checked
            new = {**planned.step.backward(dict(raw)), "schema_version": planned.target}
        else:
            new = upcast(document_type, raw, to=planned.target)
    except SchemaVersionError:
        raise
    except Exception as exc:  # the step is the application's code: report, never crash
        raise SchemaVersionError(
            f"step {planned.step.name!r} failed on document {raw.get('_id')}: "
            f"{type(exc).__name__}: {exc}",
            stored=raw.get("schema_version"),
            current=document_type.caas_schema_version(),
            document_type=document_type,
        ) from exc
    for name in _KEPT:
        if new.get(name) != raw.get(name):
            raise SchemaVersionError(
                f"step {planned.step.name!r} changed {name!r}: steps must keep it",
                stored=raw.get("schema_version"),
                current=document_type.caas_schema_version(),
                document_type=document_type,
            )
    return new


async def _record(
    layer: DataLayer,
    result: TenantMigration,
    planned: PlannedStep,
    status: MigrationStatus,
    migrated: int,
    error: str | None = None,
) -> None:
    """Write the ledger row of one step at one tenant's placement (outside its scope)."""
    ledger = layer.unguarded_platform_collection(
        MigrationRecord, why="the migration ledger is the operator's, written outside scopes"
    )
    now = utcnow()
    fields: dict[str, Any] = {
        "placement": result.placement,
        "step": planned.step.name + (":backward" if planned.backward else ""),
        "status": status.value,
        "migrated": migrated,
        "error": error[:2000] if error else None,
        "updated_at": now,
    }
    if status is MigrationStatus.RUNNING:
        fields["started_at"] = now
        fields["finished_at"] = None
    else:
        fields["finished_at"] = now
    key = {
        "tenant_id": result.tenant_id,
        "document": spec_of(planned.document_type).name,
        "version": planned.step.version,
    }
    with translate_driver_errors(tenant_id=result.tenant_id, document_type=MigrationRecord):
        await ledger.update_one(
            key,
            {
                "$set": fields,
                "$setOnInsert": {"created_at": now, "schema_version": 1},
                "$inc": {"__v": 1},
            },
            upsert=True,
        )
