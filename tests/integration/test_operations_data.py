"""Export/import round trips, tenant erasure and GDPR user erasure, in all three models."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from bson import json_util

from caas_data import DataLayer, Tier
from caas_data.analytics import Event, EventRepository
from caas_data.documents.analytics import PLATFORM_AUDIT_TENANT
from caas_data.errors import (
    DocumentValidationError,
    NotFoundError,
    OperationRefused,
    TenantMismatch,
    TenantNotFound,
)
from caas_data.operations import (
    DELETED_USER_ID,
    doctor,
    erase_tenant,
    erase_user,
    export_tenant,
    export_user,
    import_tenant,
    migrate,
    sync_indexes,
)
from caas_data.saas import Group, GroupMember, Message, Reaction
from caas_data.testing import Factories, ServerHandle
from caas_data.testing.helpers import connect_for_tests, drop_prefix_databases, new_tenant_id
from tests.integration.conftest import MODEL_TIERS


async def populate(layer: DataLayer, tenant_id: str) -> dict[str, Any]:
    """A little of every domain, through the repositories, in the tenant's scope."""
    f = Factories(layer)
    async with layer.tenant_scope(tenant_id):
        ada, bo, cy = await f.users(3)
        chat = await f.direct_conversation(ada, bo)
        hello = await f.message(chat, sender=ada, text="hello bo")
        await f.message(chat, sender=bo, text="hi ada")
        await f.reaction(hello, user=bo)
        await f.read_receipt(chat, user=bo)
        group = await f.group(owner=bo, members=[ada, cy])
        await f.device(ada)
        await f.user_key(ada)
        await f.prekey_bundle(ada)
        await f.media_file(uploader=ada)
        await f.post(author=ada)
        await f.invoice_draft()
        await f.usage_record()
        await f.event()
    return {"ada": ada, "bo": bo, "cy": cy, "chat": chat, "group": group}


@pytest_asyncio.fixture(loop_scope="session")
async def other_cluster(caas_server: ServerHandle) -> AsyncIterator[DataLayer]:
    """A second layer on databases of its own: another cluster, as far as the data goes."""
    layer = await connect_for_tests(caas_server.uri)
    try:
        yield layer
    finally:
        await drop_prefix_databases(layer)
        await layer.close()


def _rows(directory: Path) -> dict[str, list[dict[str, Any]]]:
    manifest = json.loads((directory / "manifest.json").read_text())
    return {
        key: [json_util.loads(line) for line in (directory / e["file"]).read_text().splitlines()]
        for key, e in manifest["collections"].items()
    }


@pytest.mark.parametrize(
    ("source", "target", "rename"),
    [("shared", "shared", False), ("pro", "enterprise", True), ("enterprise", "pro", False)],
)
async def test_export_import_round_trip_gives_equal_documents(
    caas_layer: DataLayer,
    other_cluster: DataLayer,
    tmp_path: Path,
    source: str,
    target: str,
    rename: bool,
) -> None:
    tenant_id = new_tenant_id(source[:3])
    await caas_layer.tenants.provision(tenant_id, tier=MODEL_TIERS[source])
    await populate(caas_layer, tenant_id)
    exported = await export_tenant(caas_layer, tenant_id, tmp_path / "out")
    assert exported.counts["tenant.messages"] == 2 and exported.counts["billing.invoices"] == 1
    assert "platform.api_keys" not in exported.counts

    new_id = new_tenant_id("new") if rename else tenant_id
    result = await import_tenant(
        other_cluster, tmp_path / "out", tenant_id=new_id, tier=MODEL_TIERS[target]
    )
    assert (result.tenant_id, result.tier) == (new_id, MODEL_TIERS[target])
    assert (await other_cluster.tenants.get(new_id)).tier is MODEL_TIERS[target]
    assert bool(result.skipped) is rename

    await export_tenant(other_cluster, new_id, tmp_path / "back")
    before, after = _rows(tmp_path / "out"), _rows(tmp_path / "back")
    for key, rows in before.items():
        if key in result.skipped:
            assert after[key] == []
            continue
        assert [{**r, "tenant_id": new_id} for r in rows] == after[key], key
    assert sum(len(r) for r in after.values()) >= 15


async def test_import_refuses_a_tampered_export_and_a_placement_with_data(
    caas_layer: DataLayer, other_cluster: DataLayer, tmp_path: Path
) -> None:
    tenant_id = new_tenant_id("src")
    await caas_layer.tenants.provision(tenant_id, tier=Tier.FREE)
    await populate(caas_layer, tenant_id)
    await export_tenant(caas_layer, tenant_id, tmp_path / "out")
    with pytest.raises(OperationRefused, match="exist already"):
        await import_tenant(caas_layer, tmp_path / "out", tenant_id=new_tenant_id("dup"))
    with pytest.raises(OperationRefused, match="not empty"):
        await export_tenant(caas_layer, tenant_id, tmp_path / "out")

    users = tmp_path / "out" / "tenant.users.jsonl"
    users.write_text(users.read_text().replace("User", "Usr", 1))
    with pytest.raises(OperationRefused, match="does not match the manifest"):
        await import_tenant(other_cluster, tmp_path / "out")
    assert await other_cluster.tenants.get_or_none(tenant_id) is None


async def _raw_mentions(layer: DataLayer, needle: str) -> list[str]:
    """Every place, in every database of the layer, whose name or content holds `needle`."""
    found = []
    for database in await layer.client.list_database_names():
        if not database.startswith(f"{layer.prefix}_"):
            continue
        if needle in database:
            found.append(database)
        for name in await layer.client[database].list_collection_names():
            if needle in name:
                found.append(f"{database}.{name}")
            async for raw in layer.client[database][name].find({}):
                if needle in json_util.dumps(raw):
                    found.append(f"{database}.{name}:{raw['_id']}")
    return found


@pytest.mark.caas_isolated
async def test_erase_tenant_leaves_nothing_of_it_but_anonymised_invoices(
    caas_layer: DataLayer, tenant: str
) -> None:
    await populate(caas_layer, tenant)
    async with caas_layer.tenant_scope(tenant):
        await Factories(caas_layer).application()
    assert await _raw_mentions(caas_layer, tenant)
    with pytest.raises(OperationRefused, match="confirm"):
        await erase_tenant(caas_layer, tenant, confirm=None)

    report = await erase_tenant(caas_layer, tenant, confirm=tenant, actor="ops")
    assert report.invoices_kept == 1
    assert [v for k, v in report.deleted.items() if k.endswith("users")] == [3]
    assert not any(k.endswith(".invoices") for k in report.deleted)
    assert await _raw_mentions(caas_layer, tenant) == []
    invoices = caas_layer.client[f"{caas_layer.prefix}_billing"]["invoices"]
    assert await invoices.count_documents({"tenant_id": report.pseudonym}) == 1
    audit = caas_layer.client[f"{caas_layer.prefix}_analytics"]["audit_logs"]
    [entry] = await audit.find(
        {"tenant_id": PLATFORM_AUDIT_TENANT, "action": "tenant.erased"}
    ).to_list()
    assert entry["target_id"] == report.pseudonym
    with pytest.raises(TenantNotFound):
        await export_user(caas_layer, tenant, str(DELETED_USER_ID))
    assert await caas_layer.tenants.retained_rows(tenant) == {}


async def test_erase_user_across_every_domain(
    caas_layer: DataLayer, tenant: str, shared_tenant: str
) -> None:
    made = await populate(caas_layer, tenant)
    ada, bo = made["ada"], made["bo"]
    # Events name users by the application's strings: the id, the external id, its own.
    names = [str(ada.id), ada.external_id, "crm-ada", str(bo.id)]
    for scope in (tenant, shared_tenant):  # a neighbour's events with the same strings stay
        async with caas_layer.tenant_scope(scope):
            for user_name in names:
                await caas_layer.repo(EventRepository).record("app.opened", user_id=user_name)
    mine = await export_user(caas_layer, tenant, str(ada.id))
    assert [m["text"] for m in mine["messages"]] == ["hello bo"]
    assert len(mine["users"]) == len(mine["user_keys"]) == len(mine["files"]) == 1
    assert sorted(e["user_id"] for e in mine["events"]) == sorted(names[:2])

    with pytest.raises(DocumentValidationError, match="event_user_ids"):
        await erase_user(caas_layer, tenant, str(ada.id), event_user_ids="crm-ada")
    report = await erase_user(
        caas_layer, tenant, str(ada.id), actor="dpo", event_user_ids=["crm-ada"]
    )
    assert report.deleted["events"] == 3
    for scope, left in ((tenant, [str(bo.id)]), (shared_tenant, names)):
        async with caas_layer.tenant_scope(scope):
            events = caas_layer.collection(Event).find({"name": "app.opened"})
            assert sorted([e["user_id"] async for e in events]) == sorted(left), scope
    assert report.deleted["users"] == 1
    assert report.anonymised["messages"] == 1
    assert report.deleted["group_members"] == 1
    for name in ("user_devices", "user_keys", "prekey_bundles", "files", "posts"):
        assert report.deleted[name] == 1, name

    async with caas_layer.tenant_scope(tenant):
        history = await Message.find_all(sort="seq").to_list()
        assert [(m.sender_id, m.text) for m in history] == [
            (DELETED_USER_ID, None),
            (bo.id, "hi ada"),
        ]
        assert await Reaction.find_all().count() == 1  # bo's reaction on the erased message stays
        group = await Group.get(made["group"].id)
        active = await GroupMember.find(GroupMember.group_id == group.id).count()
        assert group.member_count == active == 2
    with pytest.raises(NotFoundError, match="no user"):
        await export_user(caas_layer, tenant, str(ada.id))


async def test_operator_operations_refuse_to_run_in_a_tenant_scope(
    caas_layer: DataLayer, shared_tenant: str, tmp_path: Path
) -> None:
    calls = {
        "migrate": lambda: migrate(caas_layer),
        "export": lambda: export_tenant(caas_layer, shared_tenant, tmp_path / "x"),
        "import": lambda: import_tenant(caas_layer, tmp_path / "x"),
        "erase": lambda: erase_tenant(caas_layer, shared_tenant, confirm=shared_tenant),
        "erase_user": lambda: erase_user(caas_layer, shared_tenant, str(DELETED_USER_ID)),
        "export_user": lambda: export_user(caas_layer, shared_tenant, str(DELETED_USER_ID)),
        "indexes": lambda: sync_indexes(caas_layer),
        "doctor": lambda: doctor(caas_layer),
    }
    async with caas_layer.tenant_scope(shared_tenant):
        for name, call in calls.items():
            with pytest.raises(TenantMismatch, match="operator operation"):
                await call()
            assert not (tmp_path / "x").exists(), name
    assert await caas_layer.tenants.get(shared_tenant)
