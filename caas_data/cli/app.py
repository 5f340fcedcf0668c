"""`caas-data`: the operator's command for tenants, users, migrations, indexes and checks.

Every command connects with `--uri` (or `CAAS_MONGODB_URI`) and `--prefix` (or
`CAAS_DATABASE_PREFIX`), prints for people by default and one JSON document with `--json`.
An expected failure (any `CaasDataError`) is one line on stderr and exit code 1, never a
traceback; a check that finds problems (`doctor`, `audit verify`, a migration with failed
tenants) exits 1 too. Long work shows a rich progress bar on stderr.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

from bson import json_util

from caas_data.errors import CaasDataError, ConfigurationError, optional_dependency

with optional_dependency("typer", extra="cli", feature="the caas-data command"):
    import typer
with optional_dependency("rich", extra="cli", feature="the caas-data command"):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table
    from rich.text import Text

from caas_data.documents.analytics import PLATFORM_AUDIT_TENANT
from caas_data.documents.base import BaseDocument
from caas_data.layer import DataLayer, connect
from caas_data.operations import (
    ExportResult,
    ImportResult,
    MigrationReport,
    doctor,
    erase_tenant,
    export_tenant,
    import_tenant,
    migrate,
    sync_indexes,
)
from caas_data.operations._common import live_clients
from caas_data.repositories.analytics.audit import AuditLogRepository
from caas_data.services.retention import RetentionService
from caas_data.tenancy.tiers import Tier

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    name="caas-data",
    help="Operate the CAAS data layer: tenants, users, migrations, indexes, checks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
tenants_app = typer.Typer(help="The tenant directory and each tenant's data.", no_args_is_help=True)
users_app = typer.Typer(help="One end user's data (GDPR).", no_args_is_help=True)
indexes_app = typer.Typer(help="Indexes at every placement.", no_args_is_help=True)
retention_app = typer.Typer(help="Tenants' retention settings.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit trails.", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
app.add_typer(users_app, name="users")
app.add_typer(indexes_app, name="indexes")
app.add_typer(retention_app, name="retention")
app.add_typer(audit_app, name="audit")

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclasses.dataclass
class _Options:
    uri: str | None
    prefix: str | None
    json: bool
    documents: list[str]
    clusters: list[str]


class _Failed(Exception):
    """A command's own 'no' (a check found problems): its message, exit 1."""


@app.callback()
def _root(
    ctx: typer.Context,
    uri: Annotated[
        str | None, typer.Option(envvar="CAAS_MONGODB_URI", help="MongoDB connection string.")
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(envvar="CAAS_DATABASE_PREFIX", help="Database prefix (default caas)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    documents: Annotated[
        list[str] | None,
        typer.Option(help="Extra document classes to register: `module:ATTRIBUTE` (a list)."),
    ] = None,
    clusters: Annotated[
        list[str] | None,
        typer.Option("--cluster-uri", envvar="CAAS_CLUSTER_URIS", help="Another cluster: NAME=URI"),
    ] = None,
) -> None:
    """Connection options shared by every command."""
    ctx.obj = _Options(uri, prefix, as_json, documents or [], clusters or [])


def _cluster_uri(spec: str) -> tuple[str, str]:
    name, equals, uri = spec.partition("=")
    if not (equals and name and uri):
        raise ConfigurationError(f"--cluster-uri {spec!r}: expected NAME=URI")
    return name, uri


def _load_documents(specs: list[str]) -> list[type[BaseDocument]]:
    classes: list[type[BaseDocument]] = []
    for spec in specs:
        module_name, _, attribute = spec.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attribute or "DOCUMENTS")
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(f"--documents {spec}: {exc}") from exc
        items = found if isinstance(found, list | tuple) else [found]
        for item in items:
            if not (isinstance(item, type) and issubclass(item, BaseDocument)):
                raise ConfigurationError(f"--documents {spec}: {item!r} is not a document class")
            classes.append(item)
    return classes


def _run(ctx: typer.Context, work: Callable[[DataLayer], Awaitable[T]]) -> T:
    """Connect, run `work`, close; expected failures become one line and exit 1."""
    options: _Options = ctx.obj

    async def body() -> T:
        layer = await connect(
            options.uri,
            database_prefix=options.prefix,
            documents=_load_documents(options.documents),
            clusters=dict(_cluster_uri(spec) for spec in options.clusters),
        )
        try:
            return await work(layer)
        finally:
            await layer.close()

    try:
        return asyncio.run(body())
    except (CaasDataError, _Failed) as exc:
        _err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        _err.print("interrupted")
        raise typer.Exit(130) from None


def _plain(value: Any) -> Any:
    """A JSON-ready copy: dataclasses, enums, paths and BSON types made plain."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))


def _emit(ctx: typer.Context, value: Any, human: Callable[[], None]) -> None:
    if ctx.obj.json:
        sys.stdout.write(json.dumps(_plain(value), indent=2, sort_keys=True) + "\n")
    else:
        human()


class _RateColumn(ProgressColumn):
    """Items per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s")


@contextmanager
def _progress(ctx: typer.Context, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr, for people: none with --json or when stderr is no terminal.

    Yields `advance(n)`.
    """
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        console=_err,
        disable=ctx.obj.json or not _err.is_terminal,
    )
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


# -- tenants ---------------------------------------------------------------------------------


@tenants_app.command("list")
def tenants_list(ctx: typer.Context) -> None:
    """Live tenants: id, tier, placement."""
    clients = _run(ctx, live_clients)
    rows = [
        {
            "tenant_id": c.tenant_id,
            "tier": c.tier.value,
            "status": c.status.value,
            "database": c.placement.database,
            "collection_prefix": c.placement.collection_prefix,
        }
        for c in clients
    ]

    def human() -> None:
        table = Table("tenant", "tier", "status", "placement")
        for r in rows:
            table.add_row(
                r["tenant_id"], r["tier"], r["status"], f"{r['database']}/{r['collection_prefix']}"
            )
        _out.print(table)
        _out.print(f"{len(rows)} tenants")

    _emit(ctx, rows, human)


@tenants_app.command("show")
def tenants_show(ctx: typer.Context, tenant_id: str) -> None:
    """One tenant's directory entry and where its rows are."""

    async def work(layer: DataLayer) -> dict[str, Any]:
        client = await layer.tenants.get_or_none(tenant_id, include_retired=True)
        if client is None:
            raise _Failed(f"no tenant {tenant_id!r} in the directory")
        return {
            "entry": client.model_dump(mode="json", by_alias=True, exclude={"id"}),
            "rows": await layer.tenants.retained_rows(tenant_id),
        }

    shown = _run(ctx, work)

    def human() -> None:
        entry = shown["entry"]
        _out.print(
            f"{entry['tenant_id']}: {entry['tier']}, {entry['status']}, {entry['placement']}"
        )
        for where, count in sorted(shown["rows"].items()):
            _out.print(f"  {where}: {count}")

    _emit(ctx, shown, human)


@tenants_app.command("provision")
def tenants_provision(
    ctx: typer.Context,
    tenant_id: str,
    tier: Annotated[Tier, typer.Option(help="The tier (decides the isolation model).")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    purge_retained: Annotated[
        bool, typer.Option(help="Delete a former tenant's rows under this id first.")
    ] = False,
) -> None:
    """Create a tenant's collections and indexes and record it."""

    async def work(layer: DataLayer) -> Any:
        return await layer.tenants.provision(
            tenant_id,
            tier=tier,
            name=name,
            reuse_id="purge_retained" if purge_retained else "refuse",
            actor="caas-data",
        )

    client = _run(ctx, work)
    _emit(
        ctx,
        client.model_dump(mode="json", by_alias=True, exclude={"id"}),
        lambda: _out.print(f"provisioned {tenant_id} ({client.tier}) at {client.placement}"),
    )


@tenants_app.command("export")
def tenants_export(
    ctx: typer.Context,
    tenant_id: str,
    out: Annotated[Path, typer.Option(help="An empty or new directory.")],
) -> None:
    """Write a tenant's data as Extended JSON lines with a manifest."""

    async def work(layer: DataLayer) -> ExportResult:
        with _progress(ctx, f"export {tenant_id}", None) as advance:
            return await export_tenant(layer, tenant_id, out, on_progress=lambda _, n: advance(n))

    result = _run(ctx, work)
    _emit(
        ctx,
        result,
        lambda: _out.print(f"exported {sum(result.counts.values())} rows to {result.directory}"),
    )


@tenants_app.command("import")
def tenants_import(
    ctx: typer.Context,
    directory: Path,
    tenant_id: Annotated[str | None, typer.Option("--tenant", help="Import under this id.")] = None,
    tier: Annotated[Tier | None, typer.Option(help="Import into this tier.")] = None,
) -> None:
    """Restore an export into an empty placement (same or new id, any tier)."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        total = sum(int(e["count"]) for e in manifest["collections"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        total = None  # import_tenant says what is wrong with it

    async def work(layer: DataLayer) -> ImportResult:
        with _progress(ctx, "import", total) as advance:
            return await import_tenant(
                layer,
                directory,
                tenant_id=tenant_id,
                tier=tier,
                on_progress=lambda _, n: advance(n),
            )

    result = _run(ctx, work)

    def human() -> None:
        _out.print(
            f"imported {sum(result.counts.values())} rows as {result.tenant_id} ({result.tier})"
        )
        for key, why in result.skipped.items():
            _out.print(f"  skipped {key}: {why}")

    _emit(ctx, result, human)


def _confirmed(confirm: str | None, expected: str, what: str) -> None:
    if confirm != expected:
        _err.print(f"error: {what} is irreversible: repeat the id with --confirm {expected}")
        raise typer.Exit(1)


@tenants_app.command("erase")
def tenants_erase(
    ctx: typer.Context,
    tenant_id: str,
    confirm: Annotated[str | None, typer.Option(help="The tenant id again.")] = None,
) -> None:
    """Erase a tenant everywhere (invoices kept anonymised); needs --confirm <tenant>."""
    _confirmed(confirm, tenant_id, "erasing a tenant")
    result = _run(
        ctx, lambda layer: erase_tenant(layer, tenant_id, confirm=confirm, actor="caas-data")
    )
    _emit(
        ctx,
        result,
        lambda: _out.print(
            f"erased {tenant_id}: {sum(result.deleted.values())} rows deleted, "
            f"{result.invoices_kept} invoices kept as {result.pseudonym}"
        ),
    )


@tenants_app.command("deprovision")
def tenants_deprovision(
    ctx: typer.Context,
    tenant_id: str,
    confirm: Annotated[str | None, typer.Option(help="The tenant id again.")] = None,
) -> None:
    """Retire a tenant: revoke credentials, delete its data, keep a tombstone and records."""
    _confirmed(confirm, tenant_id, "deprovisioning a tenant")
    done = _run(ctx, lambda layer: layer.tenants.deprovision(tenant_id, actor="caas-data"))
    _emit(
        ctx,
        {"tenant_id": tenant_id, "deprovisioned": done},
        lambda: _out.print(
            f"deprovisioned {tenant_id}" if done else f"nothing to do for {tenant_id}"
        ),
    )


# -- platform-wide ---------------------------------------------------------------------------


@app.command("migrate")
def migrate_command(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would change.")
    ] = False,
    tenant: Annotated[list[str] | None, typer.Option(help="Only these tenants.")] = None,
    document: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    to: Annotated[int | None, typer.Option(help="Target version (with --document).")] = None,
    concurrency: Annotated[int, typer.Option(help="Tenants at a time.")] = 8,
    batch_size: Annotated[int, typer.Option(help="Documents per batch.")] = 500,
) -> None:
    """Bring every tenant's documents to the declared schema versions."""

    async def work(layer: DataLayer) -> MigrationReport:
        options = {"tenants": tenant, "document": document, "to_version": to}
        planned = await migrate(layer, dry_run=True, **options)  # type: ignore[arg-type]
        if dry_run:
            return planned
        with _progress(ctx, "migrate", planned.pending) as advance:
            return await migrate(
                layer,
                concurrency=concurrency,
                batch_size=batch_size,
                on_progress=lambda _, n: advance(n),
                **options,  # type: ignore[arg-type]
            )

    report = _run(ctx, work)

    def human() -> None:
        verb = "would migrate" if report.dry_run else "migrated"
        count = report.pending if report.dry_run else report.migrated
        _out.print(
            f"{verb} {count} documents across {len(report.tenants)} tenants "
            f"in {report.seconds:.2f} s"
        )
        for tenant_id, error in sorted(report.failed.items()):
            _err.print(f"failed: {tenant_id}: {error}", markup=False)

    _emit(ctx, {**_plain(report), "failed": report.failed}, human)
    if report.failed:
        raise typer.Exit(1)


@indexes_app.command("sync")
def indexes_sync(
    ctx: typer.Context,
    drop_unexpected: Annotated[
        bool, typer.Option("--drop-unexpected", help="Drop indexes nobody declared.")
    ] = False,
) -> None:
    """Create missing indexes at every placement; report (or drop) unexpected ones."""
    reports = _run(ctx, lambda layer: sync_indexes(layer, drop_unexpected=drop_unexpected))

    def human() -> None:
        for r in reports:
            if r.created:
                _out.print(f"{r.namespace}: created {', '.join(r.created)}")
            if r.unexpected:
                verb = "dropped" if r.dropped else "unexpected"
                _out.print(f"{r.namespace}: {verb} {', '.join(r.unexpected)}")
        _out.print(f"{len(reports)} collections needed attention")

    _emit(ctx, reports, human)


@retention_app.command("apply")
def retention_apply(ctx: typer.Context) -> None:
    """Apply every tenant's retention settings (one failing tenant does not stop the rest)."""
    reports = _run(ctx, lambda layer: RetentionService(layer).apply_all())
    rows = [
        {
            "tenant_id": r.tenant_id,
            "messages": r.messages,
            "files": r.files,
            "posts": r.posts,
            "groups": r.groups,
            "error": None if r.error is None else str(r.error),
        }
        for r in reports
    ]

    def human() -> None:
        for r in rows:
            state = f"error: {r['error']}" if r["error"] else "ok"
            _out.print(
                f"{r['tenant_id']}: {r['messages']} messages, {r['files']} files, "
                f"{r['posts']} posts, {r['groups']} groups purged ({state})"
            )

    _emit(ctx, rows, human)
    if any(r["error"] for r in rows):
        raise typer.Exit(1)


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    tenant: Annotated[
        str | None, typer.Option(help="The tenant's chain (default: the platform's).")
    ] = None,
) -> None:
    """Recompute a hash chain; exit 1 at the first broken link."""
    chain = tenant or PLATFORM_AUDIT_TENANT
    report = _run(ctx, lambda layer: layer.repo(AuditLogRepository).verify_chain(chain))
    _emit(
        ctx,
        {**_plain(report), "ok": report.ok},
        lambda: _out.print(
            f"{report.tenant_id}: {report.checked} entries, "
            + ("chain intact" if report.ok else f"broken at {report.broken_seq}: {report.reason}")
        ),
    )
    if not report.ok:
        raise typer.Exit(1)


@app.command("doctor")
def doctor_command(ctx: typer.Context) -> None:
    """Connectivity, server, transactions, namespaces, directory and orphan checks."""
    report = _run(ctx, doctor)

    def human() -> None:
        _out.print(f"server {report.server_version}, replica set {report.replica_set or 'none'}")
        _out.print(f"transactions: {'yes' if report.transactions else 'no'}")
        _out.print(f"namespaces: {report.namespaces} of {report.namespace_budget}")
        _out.print(f"tenants: {report.tenants}")
        for problem in report.problems:
            _out.print(f"problem: {problem}", markup=False)
        _out.print("ok" if report.ok else f"{len(report.problems)} problems")

    _emit(ctx, {**_plain(report), "ok": report.ok}, human)
    if not report.ok:
        raise typer.Exit(1)


def main() -> None:
    """The `caas-data` entry point."""
    app()
