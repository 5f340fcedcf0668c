"""Schema migrations per tenant placement: dry run, run, upcast on read, back, failures, crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from caas_data import DataLayer, Tier
from caas_data.documents.platform import MigrationRecord
from caas_data.errors import SchemaVersionError
from caas_data.operations import migrate
from caas_data.testing import ServerHandle
from caas_data.testing.helpers import (
    layer_for_tests,
    new_tenant_id,
)
from tests.integration.conftest import MODEL_TIERS, raw_collection
from tests.integration.migration_fixtures import DOCUMENTS, Note

ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture(loop_scope="session")
async def note_layer(caas_server: ServerHandle) -> AsyncIterator[DataLayer]:
    """A layer of its own that knows `Note` (a class with two schema steps)."""
    async with layer_for_tests(caas_server.uri, documents=DOCUMENTS) as layer:
        yield layer


async def _tenant_with_v1_notes(layer: DataLayer, model: str, names: list[object]) -> str:
    tenant_id = new_tenant_id(model[:3])
    await layer.tenants.provision(tenant_id, tier=MODEL_TIERS[model])
    raw = raw_collection(layer, tenant_id, MODEL_TIERS[model], "ops_notes")
    await raw.insert_many(
        [{"tenant_id": tenant_id, "full_name": n, "schema_version": 1, "__v": 0} for n in names]
    )
    return tenant_id


async def _stored(layer: DataLayer, tenant_id: str, model: str) -> list[dict]:
    raw = raw_collection(layer, tenant_id, MODEL_TIERS[model], "ops_notes")
    return await raw.find({"tenant_id": tenant_id}, sort=[("_id", 1)]).to_list()


async def test_migrate_dry_run_then_run_in_all_three_models(note_layer: DataLayer) -> None:
    ids = {
        m: await _tenant_with_v1_notes(note_layer, m, ["Ada Lovelace", "Bo"]) for m in MODEL_TIERS
    }

    dry = await migrate(note_layer, dry_run=True)
    assert dry.migrated == 0 and not dry.failed
    assert {t.tenant_id: t.pending for t in dry.tenants} == {
        t: {"ops_notes:split_full_name": 2, "ops_notes:add_tags": 2} for t in ids.values()
    }
    assert [
        d["schema_version"] for m, t in ids.items() for d in await _stored(note_layer, t, m)
    ] == [1] * 6

    report = await migrate(note_layer, concurrency=2)
    assert not report.failed and report.migrated == 12
    for model, tenant_id in ids.items():
        stored = await _stored(note_layer, tenant_id, model)
        assert [(d["first"], d["last"], d["tags"], d["schema_version"]) for d in stored] == [
            ("Ada", "Lovelace", [], 3),
            ("Bo", "", [], 3),
        ]
        assert all("full_name" not in d and d["__v"] == 2 for d in stored)
        ledger = note_layer.client[note_layer.database_name(MigrationRecord.caas_area)][
            "schema_migrations"
        ]
        records = await ledger.find({"tenant_id": tenant_id}, sort=[("version", 1)]).to_list()
        assert [(r["step"], r["status"], r["migrated"]) for r in records] == [
            ("split_full_name", "done", 2),
            ("add_tags", "done", 2),
        ]
    again = await migrate(note_layer)
    assert again.migrated == 0 and again.pending == 0


async def test_reads_upcast_older_documents_and_refuse_newer_ones(note_layer: DataLayer) -> None:
    tenant_id = await _tenant_with_v1_notes(note_layer, "pro", ["Cy Twombly"])
    async with note_layer.tenant_scope(tenant_id):
        [note] = await Note.find_all().to_list()
        assert (note.first, note.last, note.tags, note.schema_version) == ("Cy", "Twombly", [], 3)
        fresh = await Note(first="Di").insert()
        assert fresh.schema_version == 3
    raw = raw_collection(note_layer, tenant_id, Tier.PRO, "ops_notes")
    await raw.insert_one({"tenant_id": tenant_id, "first": "Ed", "schema_version": 9, "__v": 0})
    async with note_layer.tenant_scope(tenant_id):
        with pytest.raises(SchemaVersionError, match="newer than this code knows"):
            await Note.find(Note.first == "Ed").to_list()


async def test_backward_to_version_one_and_per_tenant_failure_report(
    note_layer: DataLayer,
) -> None:
    good = await _tenant_with_v1_notes(note_layer, "shared", ["Fay Wray"])
    bad = await _tenant_with_v1_notes(note_layer, "enterprise", ["Gus", 42])
    report = await migrate(note_layer, tenants=[good, bad])
    assert set(report.failed) == {bad}
    assert "split_full_name" in report.failed[bad] and "AttributeError" in report.failed[bad]
    assert [d["schema_version"] for d in await _stored(note_layer, good, "shared")] == [3]
    assert [d["schema_version"] for d in await _stored(note_layer, bad, "enterprise")] == [1, 1]

    back = await migrate(note_layer, tenants=[good], document="ops_notes", to_version=1)
    assert not back.failed and back.migrated == 2
    [doc] = await _stored(note_layer, good, "shared")
    assert (doc["full_name"], doc["schema_version"], "tags" in doc) == ("Fay Wray", 1, False)


async def test_a_killed_migration_resumes_where_it_stopped(
    note_layer: DataLayer, caas_server: ServerHandle
) -> None:
    tenant_id = await _tenant_with_v1_notes(note_layer, "pro", [f"N{i} X" for i in range(6)])
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.migrate_child",
            caas_server.uri,
            note_layer.prefix,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first.startswith(f"batch {tenant_id} 2"), first
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    versions = [d["schema_version"] for d in await _stored(note_layer, tenant_id, "pro")]
    assert versions == [2, 2, 1, 1, 1, 1]
    ledger = note_layer.client[note_layer.database_name(MigrationRecord.caas_area)][
        "schema_migrations"
    ]
    [record] = await ledger.find({"tenant_id": tenant_id}).to_list()
    assert record["status"] == "running"

    report = await migrate(note_layer, tenants=[tenant_id])
    assert not report.failed
    assert report.tenants[0].migrated == {"ops_notes:split_full_name": 4, "ops_notes:add_tags": 6}
    stored = await _stored(note_layer, tenant_id, "pro")
    assert [(d["first"], d["schema_version"]) for d in stored] == [(f"N{i}", 3) for i in range(6)]
    records = await ledger.find({"tenant_id": tenant_id}, sort=[("version", 1)]).to_list()
    assert [r["status"] for r in records] == ["done", "done"]
