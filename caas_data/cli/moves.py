"""`caas-data tenants move` and `tenants move-pending`: online tenant moves from the shell.

Registered on the `tenants` group of `caas_data.cli.app`. Progress goes to stderr (a bar on
a terminal, one line per step otherwise), the result to stdout; a failed move (a
`CaasDataError`: unknown tenant or cluster, no capacity, a copy that did not verify) is one
`error:` line and exit code 1. Running the command again after a crash or a failure
resumes the move where its record stands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from caas_data.cli.app import _emit, _err, _out, _progress, _run, tenants_app
from caas_data.errors import optional_dependency
from caas_data.layer import DataLayer
from caas_data.services.moves import MoveReport, PendingMoves
from caas_data.tenancy.tiers import Tier

with optional_dependency("typer", extra="cli", feature="the caas-data command"):
    import typer

__all__ = ["tenants_move", "tenants_move_pending"]

_BatchSize = Annotated[int, typer.Option(min=1, help="Documents copied per batch.")]
_FenceGrace = Annotated[
    float | None,
    typer.Option(
        min=0,
        help="Seconds the emptied old placement stays fenced (default: the cache TTL + 1 s).",
    ),
]


def _steps(advance: Callable[[int], None], json: bool) -> Callable[[str, Mapping[str, Any]], None]:
    """A move's progress hook: copied documents on the bar, each step on its own line."""
    copied: dict[str, int] = {}

    def on_progress(event: str, details: Mapping[str, Any]) -> None:
        if event == "copied_batch":
            name = str(details["collection"])
            advance(int(details["copied"]) - copied.get(name, 0))
            copied[name] = int(details["copied"])
        elif event != "cleaned_collection" and not json:
            shown = ", ".join(
                f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                for k, v in details.items()
                if k != "tenant_id"
            )
            _err.print(f"{details['tenant_id']}: {event}" + (f" ({shown})" if shown else ""))

    return on_progress


def _describe(report: MoveReport) -> str:
    where = f"{report.target.database}/{report.target.collection_prefix or '*'}"
    if not report.moved:
        return (
            f"{report.tenant_id}: already at {where} ({report.target.cluster}); "
            f"tier {report.from_tier} -> {report.to_tier}, no data moved"
        )
    return (
        f"{report.tenant_id}: moved {report.from_tier} -> {report.to_tier}, "
        f"{report.documents} documents ({report.caught_up} caught up) in {report.seconds:.2f} s, "
        f"write pause {report.fence_seconds:.2f} s; now at {where} ({report.target.cluster})"
    )


@tenants_app.command("move")
def tenants_move(
    ctx: typer.Context,
    tenant_id: str,
    tier: Annotated[
        Tier | None, typer.Option(help="The tier to move to (default: keep the tier).")
    ] = None,
    cluster: Annotated[
        str | None, typer.Option(help="The cluster to move to (default: by capacity).")
    ] = None,
    batch_size: _BatchSize = 500,
    fence_grace: _FenceGrace = None,
) -> None:
    """Move a tenant online to another tier's isolation model and/or another cluster.

    Run again, it finishes a move that was interrupted.
    """

    async def work(layer: DataLayer) -> MoveReport:
        with _progress(ctx, f"moving {tenant_id}", None) as advance:
            return await layer.tenants.move(
                tenant_id,
                to=tier,
                cluster=cluster,
                actor="caas-data",
                batch_size=batch_size,
                fence_grace=fence_grace,
                on_progress=_steps(advance, ctx.obj.json),
            )

    report = _run(ctx, work)
    _emit(ctx, report, lambda: _out.print(_describe(report), markup=False))


@tenants_app.command("move-pending")
def tenants_move_pending(
    ctx: typer.Context,
    batch_size: _BatchSize = 500,
    fence_grace: _FenceGrace = None,
) -> None:
    """Finish interrupted moves and carry out every requested tier change."""

    async def work(layer: DataLayer) -> PendingMoves:
        with _progress(ctx, "moving pending tenants", None) as advance:
            return await layer.tenants.move_pending(
                actor="caas-data",
                batch_size=batch_size,
                fence_grace=fence_grace,
                on_progress=_steps(advance, ctx.obj.json),
            )

    done = _run(ctx, work)

    def human() -> None:
        if done.nothing_to_do:
            _out.print(str(done), markup=False)
        for report in done.reports:
            _out.print(_describe(report), markup=False)

    _emit(ctx, {"nothing_to_do": done.nothing_to_do, "reports": list(done.reports)}, human)
