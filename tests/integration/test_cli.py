"""`caas-data` as a subprocess against the session's embedded server (`CAAS_MONGODB_URI`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from caas_data import DataLayer, Tier, system_scope
from caas_data.analytics import EventRepository
from caas_data.platform import SaasClientRepository
from caas_data.saas import User
from caas_data.testing import ServerHandle
from caas_data.testing.helpers import (
    connect_for_tests,
    drop_prefix_databases,
    layer_for_tests,
    new_tenant_id,
)
from tests.integration.conftest import raw_collection
from tests.integration.migration_fixtures import DOCUMENTS
from tests.integration.moving import raw_external_ids, seed, tenant_rows
from tests.integration.test_operations_data import populate

ROOT = Path(__file__).resolve().parents[2]
NOTES = "tests.integration.migration_fixtures:DOCUMENTS"


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@pytest_asyncio.fixture(loop_scope="session")
async def cli_layer(caas_server: ServerHandle) -> AsyncIterator[DataLayer]:
    """Databases of the CLI tests' own (a prefix), which the command reaches through env."""
    async with layer_for_tests(caas_server.uri, documents=DOCUMENTS) as layer:
        yield layer


@pytest.fixture
def cli(caas_server: ServerHandle, cli_layer: DataLayer):
    env = {
        **os.environ,
        "CAAS_MONGODB_URI": caas_server.uri,
        "CAAS_DATABASE_PREFIX": cli_layer.prefix,
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
        # The test's own layer created the platform collections: the command need not.
        "CAAS_CREATE_PLATFORM_INDEXES": "false",
    }

    def run(*args: str) -> Run:
        done = subprocess.run(
            [sys.executable, "-m", "caas_data.cli", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return Run(done.returncode, done.stdout, done.stderr)

    return run


def one_line_error(run: Run, needle: str) -> None:
    assert run.code == 1 and run.out == ""
    assert run.err.count("\n") == 1 and run.err.startswith("error: ") and needle in run.err


async def test_tenants_provision_list_show_and_clear_failures(cli, cli_layer: DataLayer) -> None:
    tenant_id = new_tenant_id("cli")
    made = cli("--json", "tenants", "provision", tenant_id, "--tier", "pro")
    assert made.code == 0 and made.json["tier"] == "pro"
    assert made.json["placement"]["collection_prefix"] == f"{tenant_id}_"
    listed = cli("--json", "tenants", "list")
    assert {"tenant_id": tenant_id, "tier": "pro"}.items() <= next(
        r for r in listed.json if r["tenant_id"] == tenant_id
    ).items()
    shown = cli("--json", "tenants", "show", tenant_id)
    assert shown.json["entry"]["status"] == "active"

    one_line_error(cli("tenants", "show", "nobody-here"), "no tenant 'nobody-here'")
    one_line_error(cli("tenants", "provision", "Bad Id", "--tier", "free"), "tenant id")
    one_line_error(cli("tenants", "provision", tenant_id, "--tier", "free"), "exists with tier pro")


async def test_tenants_move_and_move_pending(cli, cli_layer: DataLayer) -> None:
    tenant_id = new_tenant_id("mv")
    await cli_layer.tenants.provision(tenant_id, tier=Tier.FREE)
    seeded = await seed(cli_layer, tenant_id, users=3, messages=1)
    source = await cli_layer.tenants.placement(tenant_id)

    moved = cli("tenants", "move", tenant_id, "--tier", "pro", "--fence-grace", "0")
    assert moved.code == 0, moved.err
    assert f"{tenant_id}: moved free -> pro" in moved.out and "write pause" in moved.out
    assert f"{tenant_id}: fenced" in moved.err and f"{tenant_id}: switched" in moved.err
    as_json = cli(
        "--json", "tenants", "move", tenant_id, "--tier", "enterprise", "--fence-grace", "0"
    )
    assert as_json.code == 0 and as_json.err == ""
    assert (as_json.json["from_tier"], as_json.json["to_tier"]) == ("pro", "enterprise")
    assert as_json.json["moved"] and as_json.json["documents"] > 0
    cli_layer.resolver.invalidate(tenant_id)  # another process switched it
    target = await cli_layer.tenants.placement(tenant_id)
    assert target.tier is Tier.ENTERPRISE
    assert sorted(await raw_external_ids(cli_layer, target)) == sorted(seeded.external_ids)
    assert await tenant_rows(cli_layer, source) == {}

    one_line_error(cli("tenants", "move", "nobody-here", "--tier", "pro"), "not provisioned")
    one_line_error(
        cli("tenants", "move", tenant_id, "--cluster", "nowhere"), "'nowhere' is not connected"
    )

    async with system_scope():
        await cli_layer.repo(SaasClientRepository).request_tier_change(
            Tier.PRO, tenant_id=tenant_id
        )
    pending = cli("tenants", "move-pending", "--fence-grace", "0")
    assert pending.code == 0, pending.err
    assert f"{tenant_id}: moved enterprise -> pro" in pending.out
    again = cli("--json", "tenants", "move-pending")
    assert again.code == 0 and again.json == {"nothing_to_do": True, "reports": []}
    assert (await cli_layer.tenants.get(tenant_id)).tier is Tier.PRO


async def test_tenants_export_import_erase_deprovision(
    cli, cli_layer: DataLayer, caas_server: ServerHandle, tmp_path: Path
) -> None:
    source = new_tenant_id("src")
    await cli_layer.tenants.provision(source, tier=Tier.FREE)
    await populate(cli_layer, source)
    exported = cli("--json", "tenants", "export", source, "--out", str(tmp_path / "out"))
    assert exported.code == 0 and exported.json["counts"]["tenant.users"] == 3

    # Beside the source, in the same cluster: its rows' _ids are taken, refused before writing.
    copy = new_tenant_id("copy")
    one_line_error(
        cli("tenants", "import", str(tmp_path / "out"), "--tenant", copy), "exist already"
    )
    assert await cli_layer.tenants.get_or_none(copy) is None

    one_line_error(cli("tenants", "erase", source), "--confirm")
    erased = cli("--json", "tenants", "erase", source, "--confirm", source)
    assert erased.code == 0 and erased.json["invoices_kept"] == 1
    assert await cli_layer.tenants.retained_rows(source) == {}

    other = await connect_for_tests(caas_server.uri)  # another cluster, as far as data goes
    try:
        moved = cli(
            "--json",
            "--prefix",
            other.prefix,
            "tenants",
            "import",
            str(tmp_path / "out"),
            "--tier",
            "enterprise",
        )
        assert moved.code == 0 and moved.json["tier"] == "enterprise"
        assert sum(moved.json["counts"].values()) == sum(exported.json["counts"].values())
        async with other.tenant_scope(source):
            assert await User.find_all().count() == 3
        one_line_error(cli("--prefix", other.prefix, "tenants", "deprovision", source), "--confirm")
        gone = cli(
            "--json",
            "--prefix",
            other.prefix,
            "tenants",
            "deprovision",
            source,
            "--confirm",
            source,
        )
        assert gone.code == 0 and gone.json == {"tenant_id": source, "deprovisioned": True}
        assert await other.tenants.get_or_none(source) is None
    finally:
        await drop_prefix_databases(other)
        await other.close()


async def test_users_export_and_erase(cli, cli_layer: DataLayer, tmp_path: Path) -> None:
    tenant_id = new_tenant_id("usr")
    await cli_layer.tenants.provision(tenant_id, tier=Tier.ENTERPRISE)
    ada = (await populate(cli_layer, tenant_id))["ada"]
    exported = cli("users", "export", tenant_id, str(ada.id))
    assert exported.code == 0
    data = json.loads(exported.out)
    assert data["users"][0]["display_name"] == ada.display_name
    assert [m["text"] for m in data["messages"]] == ["hello bo"]

    async with cli_layer.tenant_scope(tenant_id):
        for name in (str(ada.id), "crm-ada", "someone-else"):
            await cli_layer.repo(EventRepository).record("app.opened", user_id=name)

    one_line_error(cli("users", "erase", tenant_id, str(ada.id)), "--confirm")
    erased = cli(
        "--json", "users", "erase", tenant_id, str(ada.id), "--confirm", str(ada.id),
        "--event-user-id", "crm-ada",
    )  # fmt: skip
    assert erased.code == 0 and erased.json["deleted"]["users"] == 1
    assert erased.json["deleted"]["events"] == 2  # its id and the string named; not the other
    one_line_error(cli("users", "export", tenant_id, str(ada.id)), "no user")


async def test_migrate_dry_run_then_run(cli, cli_layer: DataLayer) -> None:
    tenant_id = new_tenant_id("mig")
    await cli_layer.tenants.provision(tenant_id, tier=Tier.STARTER)
    notes = raw_collection(cli_layer, tenant_id, Tier.STARTER, "ops_notes")
    await notes.insert_many(
        [{"tenant_id": tenant_id, "full_name": f"A{i} B", "schema_version": 1} for i in range(3)]
    )
    dry = cli("--json", "--documents", NOTES, "migrate", "--dry-run", "--tenant", tenant_id)
    assert dry.code == 0 and dry.json["dry_run"] is True
    assert dry.json["tenants"][0]["pending"] == {
        "ops_notes:split_full_name": 3,
        "ops_notes:add_tags": 3,
    }
    ran = cli("--documents", NOTES, "migrate", "--tenant", tenant_id, "--batch-size", "2")
    assert ran.code == 0 and "migrated 6 documents across 1 tenants" in ran.out
    assert [d["schema_version"] async for d in notes.find({"tenant_id": tenant_id})] == [3] * 3


async def test_indexes_sync_creates_reports_and_drops(cli, cli_layer: DataLayer) -> None:
    tenant_id = new_tenant_id("idx")
    await cli_layer.tenants.provision(tenant_id, tier=Tier.PRO)
    users = raw_collection(cli_layer, tenant_id, Tier.PRO, "users")
    declared = [i["name"] async for i in await users.list_indexes() if i["name"] != "_id_"]
    await users.drop_index(declared[0])
    await users.create_index([("nickname_x", 1)], name="rogue")
    synced = cli("--json", "--documents", NOTES, "indexes", "sync")
    assert synced.code == 0
    mine = next(r for r in synced.json if r["namespace"].endswith(f".{tenant_id}_users"))
    assert mine["created"] == [declared[0]] and mine["unexpected"] == ["rogue"]
    assert mine["dropped"] == []
    dropped = cli("--documents", NOTES, "indexes", "sync", "--drop-unexpected")
    assert dropped.code == 0 and f"{tenant_id}_users: dropped rogue" in dropped.out
    names = {i["name"] async for i in await users.list_indexes()}
    assert declared[0] in names and "rogue" not in names


async def test_retention_apply_and_audit_verify(cli, cli_layer: DataLayer) -> None:
    tenant_id = new_tenant_id("ret")
    await cli_layer.tenants.provision(tenant_id, tier=Tier.FREE)
    applied = cli("--json", "--documents", NOTES, "retention", "apply")
    assert applied.code == 0
    assert {"tenant_id": tenant_id, "error": None}.items() <= next(
        r for r in applied.json if r["tenant_id"] == tenant_id
    ).items()
    verified = cli("--json", "audit", "verify")
    assert verified.code == 0 and verified.json["ok"] is True
    human = cli("audit", "verify", "--tenant", tenant_id)
    assert human.code == 0 and "chain intact" in human.out


async def test_doctor_reports_orphans_and_misplaced_tenants(cli, cli_layer: DataLayer) -> None:
    shared_users = cli_layer.client[f"{cli_layer.prefix}_shared"]["users"]
    await shared_users.insert_one({"tenant_id": "ghost-tenant", "display_name": "?"})
    try:
        sick = cli("--json", "--documents", NOTES, "doctor")
        assert sick.code == 1
        assert sick.json["connected"] is True and sick.json["server_version"]
        assert sick.json["orphans"] == {"ghost-tenant": ["users"]}
        assert any("ghost-tenant" in p for p in sick.json["problems"])
    finally:
        await shared_users.delete_many({"tenant_id": "ghost-tenant"})
