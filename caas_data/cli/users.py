"""`caas-data users export` and `users erase`: one end user's data, from the shell (GDPR).

Registered on the `users` group of `caas_data.cli.app`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

from bson import json_util

from caas_data.cli.app import _confirmed, _emit, _out, _run, users_app
from caas_data.errors import optional_dependency
from caas_data.operations import erase_user, export_user

with optional_dependency("typer", extra="cli", feature="the caas-data command"):
    import typer
    from rich.table import Table

__all__ = ["users_erase", "users_export"]


@users_app.command("export")
def users_export(
    ctx: typer.Context,
    tenant_id: str,
    user_id: str,
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
) -> None:
    """One user's own data as relaxed Extended JSON (GDPR access/portability)."""
    data = _run(ctx, lambda layer: export_user(layer, tenant_id, user_id))
    text = json_util.dumps(data, json_options=json_util.RELAXED_JSON_OPTIONS, indent=2)
    if out is None:
        sys.stdout.write(text + "\n")
    else:
        out.write_text(text + "\n")
        if not ctx.obj.json:
            _out.print(f"wrote {sum(len(v) for v in data.values())} documents to {out}")


@users_app.command("erase")
def users_erase(
    ctx: typer.Context,
    tenant_id: str,
    user_id: str,
    confirm: Annotated[str | None, typer.Option(help="The user id again.")] = None,
    event_user_id: Annotated[
        list[str] | None,
        typer.Option(
            help="Another string the application's analytics events name the user by "
            "(repeatable; the user's id and external id are always included)."
        ),
    ] = None,
) -> None:
    """Erase one end user across every domain (GDPR); needs --confirm <user>."""
    _confirmed(confirm, user_id, "erasing a user")
    names = tuple(event_user_id or ())
    result = _run(
        ctx,
        lambda layer: erase_user(
            layer, tenant_id, user_id, actor="caas-data", event_user_ids=names
        ),
    )

    def human() -> None:
        table = Table("collection", "deleted", "anonymised")
        for name in sorted(set(result.deleted) | set(result.anonymised)):
            table.add_row(
                name, str(result.deleted.get(name, "")), str(result.anonymised.get(name, ""))
            )
        _out.print(table)

    _emit(ctx, result, human)
