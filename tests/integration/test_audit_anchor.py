"""The audit chain's anchor: truncation at either end is reported, retention is not.

The chain lives in the platform-wide analytics database whatever the tenant's isolation
model, so one model (the cheapest, shared) is enough for the chain itself. Retention runs in
the tenant's scope, as the code expects. Tampering goes around the layer with `layer.client`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from caas_data import AuditChainBroken, DataLayer, DocumentValidationError, tenant_scope
from caas_data.analytics import AuditAnchor
from caas_data.documents.analytics import AuditLog
from caas_data.documents.base import utcnow
from caas_data.repositories.analytics.audit import AuditLogRepository
from caas_data.repositories.analytics.audit_chain import ChainReport
from caas_data.repositories.analytics.events import EventRepository


def raw_entries(layer: DataLayer) -> Any:
    return layer.client[f"{layer.prefix}_analytics"]["audit_logs"]


def raw_anchors(layer: DataLayer) -> Any:
    return layer.client[f"{layer.prefix}_analytics"]["audit_anchors"]


async def build_chain(layer: DataLayer, tenant: str, old: int, new: int = 0) -> datetime:
    """Append `old` entries, then `new` ones after the returned cutoff."""
    async with tenant_scope(tenant):
        audit = layer.repo(AuditLogRepository)
        for i in range(old):
            await audit.append("x.old", details={"i": i})
        await asyncio.sleep(0.01)  # created_at has millisecond precision
        cutoff = utcnow()
        await asyncio.sleep(0.01)
        for i in range(new):
            await audit.append("x.new", details={"i": i})
    return cutoff


async def verify(layer: DataLayer, tenant: str) -> ChainReport:
    async with tenant_scope(tenant):
        return await layer.repo(AuditLogRepository).verify_chain()


async def stored_seqs(layer: DataLayer, tenant: str) -> list[int]:
    cursor = raw_entries(layer).find({"tenant_id": tenant}, {"seq": 1}, sort=[("seq", 1)])
    return [raw["seq"] async for raw in cursor]


# -- cutoffs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cutoff", "message"),
    [
        (lambda: utcnow() + timedelta(days=1), "in the future"),
        (lambda: utcnow() + timedelta(seconds=2), "in the future"),
        (lambda: datetime(2999, 1, 1), "timezone-aware"),
        (lambda: datetime.now().replace(tzinfo=None), "timezone-aware"),
        (lambda: "2020-01-01", "must be a timezone-aware datetime"),
    ],
    ids=["a-day-ahead", "seconds-ahead", "naive-future", "naive-now", "a-string"],
)
async def test_a_future_or_naive_cutoff_deletes_nothing(
    caas_layer: DataLayer, shared_tenant: str, cutoff: Any, message: str
) -> None:
    await build_chain(caas_layer, shared_tenant, old=3)
    async with tenant_scope(shared_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        with pytest.raises(DocumentValidationError, match=message) as refused:
            await audit.purge_older_than(cutoff())
        assert refused.value.fields == ("cutoff",)
        events = caas_layer.repo(EventRepository)
        await events.record("x.y", at=utcnow() - timedelta(days=2))
        with pytest.raises(DocumentValidationError, match=message):
            await events.purge_older_than(cutoff())
        assert await events.count() == 1
    assert await stored_seqs(caas_layer, shared_tenant) == [1, 2, 3]
    report = await verify(caas_layer, shared_tenant)
    assert report.ok and report.checked == 3


async def test_a_bad_retention_limit_is_refused_before_any_io(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    cutoff = await build_chain(caas_layer, shared_tenant, old=2)
    async with tenant_scope(shared_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        events = caas_layer.repo(EventRepository)
        await events.record_many([{"name": "x.old", "at": cutoff - timedelta(days=1)}] * 2)
        for limit in (0, -1, True, 2**63, 1.5):
            with pytest.raises(DocumentValidationError, match="limit"):
                await audit.purge_older_than(cutoff, limit=limit)  # type: ignore[arg-type]
            with pytest.raises(DocumentValidationError, match="limit"):
                await events.purge_older_than(cutoff, limit=limit)  # type: ignore[arg-type]
        assert await stored_seqs(caas_layer, shared_tenant) == [1, 2]
        assert await events.count() == 2
        # A past cutoff and a good limit pass the same check and delete.
        assert await events.purge_older_than(cutoff, limit=1) == 1
        assert await audit.purge_older_than(cutoff, limit=1) == 1
        assert await events.count() == 1
        assert await stored_seqs(caas_layer, shared_tenant) == [2]


# -- retention moves the anchor's start ----------------------------------------------------


async def test_retention_in_batches_keeps_the_chain_verifiable(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    cutoff = await build_chain(caas_layer, shared_tenant, old=5, new=2)
    async with tenant_scope(shared_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        assert await audit.purge_older_than(cutoff, limit=2) == 2
        anchor = await audit.anchor()
        assert anchor is not None
        assert (anchor.start_seq, anchor.entry_count, anchor.removed) == (3, 5, 2)
        assert (anchor.head_seq, anchor.adopted_seq) == (7, None)
        removed = await raw_entries(caas_layer).count_documents(
            {"tenant_id": shared_tenant, "seq": {"$lt": 3}}
        )
        assert removed == 0
        report = await audit.verify_chain()
        assert report.ok and (report.first_seq, report.last_seq, report.checked) == (3, 7, 5)
        assert await audit.purge_older_than(cutoff) == 3
        assert await audit.purge_older_than(cutoff) == 0
        report = await audit.verify_chain()
        assert report.ok and (report.first_seq, report.last_seq, report.checked) == (6, 7, 2)
        assert (await audit.append("x.after")).seq == 8
        assert (await audit.verify_chain()).checked == 3


async def test_retention_of_every_entry_is_ok_and_says_so(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    cutoff = await build_chain(caas_layer, shared_tenant, old=3)
    async with tenant_scope(shared_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        assert await audit.purge_older_than(cutoff) == 3
        report = await audit.verify_chain()
        assert report.ok and report.checked == 0
        assert "retention removed all 3 entries" in (report.note or "")
        # The chain resumes after the removed head, linked to its hash.
        entry = await audit.append("x.next")
        anchor = await audit.anchor()
        assert anchor is not None and entry.seq == 4 and entry.prev_hash == anchor.start_prev_hash
        report = await audit.verify_chain()
        assert report.ok and (report.first_seq, report.checked, report.note) == (4, 1, None)


async def test_retention_joins_a_transaction_and_an_abort_keeps_entries_and_anchor(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    cutoff = await build_chain(caas_layer, shared_tenant, old=3, new=1)
    async with tenant_scope(shared_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        before = await audit.anchor()
        with pytest.raises(RuntimeError, match="crash"):
            async with caas_layer.unit_of_work():
                assert await audit.purge_older_than(cutoff) == 3
                raise RuntimeError("crash after the delete, before the commit")
        assert await audit.anchor() == before
        assert await stored_seqs(caas_layer, shared_tenant) == [1, 2, 3, 4]
        assert (await audit.verify_chain()).ok


@pytest.mark.parametrize(
    ("edit", "reason"),
    [({"actor": "nobody"}, "does not match its hash"), ({"action": "Not Valid"}, "action")],
    ids=["rehash-needed", "schema"],
)
async def test_retention_refuses_to_erase_a_tampered_prefix(
    caas_layer: DataLayer, shared_tenant: str, edit: dict[str, Any], reason: str
) -> None:
    cutoff = await build_chain(caas_layer, shared_tenant, old=4, new=1)
    await raw_entries(caas_layer).update_one({"tenant_id": shared_tenant, "seq": 2}, {"$set": edit})
    async with tenant_scope(shared_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        with pytest.raises(AuditChainBroken, match=f"seq 2: .*{reason}") as refused:
            await audit.purge_older_than(cutoff)
        assert refused.value.broken_seq == 2
    # Entries are checked before any is deleted: entry 1, which checked out, stays too.
    assert await stored_seqs(caas_layer, shared_tenant) == [1, 2, 3, 4, 5]
    report = await verify(caas_layer, shared_tenant)
    assert not report.ok and report.broken_seq == 2


# -- truncation and tampering around the layer --------------------------------------------


@pytest.mark.parametrize(
    ("removed", "broken_seq", "reason"),
    [
        ({"seq": 5}, 5, "entries 5..5 are missing at the newest end"),
        ({"seq": {"$gte": 4}}, 4, "entries 4..5 are missing at the newest end"),
        ({"seq": 1}, 2, "entries 1..1 are missing at the oldest end"),
        ({"seq": {"$lte": 2}}, 3, "entries 1..2 are missing at the oldest end"),
        ({"seq": 3}, 4, "entries 3..3 are missing"),
        ({}, 1, "all entries 1..5 are missing"),
    ],
    ids=["newest", "two-newest", "oldest", "two-oldest", "middle", "all"],
)
async def test_raw_deletion_is_reported(
    caas_layer: DataLayer,
    shared_tenant: str,
    removed: dict[str, Any],
    broken_seq: int,
    reason: str,
) -> None:
    await build_chain(caas_layer, shared_tenant, old=5)
    deleted = await raw_entries(caas_layer).delete_many({"tenant_id": shared_tenant, **removed})
    assert deleted.deleted_count >= 1
    report = await verify(caas_layer, shared_tenant)
    assert not report.ok
    assert report.broken_seq == broken_seq
    assert reason in (report.reason or "")


async def test_after_retention_only_the_retained_start_is_trusted(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    cutoff = await build_chain(caas_layer, shared_tenant, old=2, new=3)
    async with tenant_scope(shared_tenant):
        assert await caas_layer.repo(AuditLogRepository).purge_older_than(cutoff) == 2
    await raw_entries(caas_layer).delete_one({"tenant_id": shared_tenant, "seq": 3})
    report = await verify(caas_layer, shared_tenant)
    assert not report.ok and report.broken_seq == 4
    assert "entries 3..3 are missing at the oldest end" in (report.reason or "")
    assert "retention removed only up to seq 2" in (report.reason or "")


async def test_deleting_by_date_around_the_repository_is_truncation(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    # The guard's delete_older_than removes entries without moving the anchor: not retention.
    cutoff = await build_chain(caas_layer, shared_tenant, old=2, new=2)
    async with tenant_scope(shared_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        assert await audit.collection().delete_older_than(cutoff) == 2
        report = await audit.verify_chain()
    assert not report.ok and "entries 1..2 are missing at the oldest end" in (report.reason or "")


async def test_a_rehashed_newest_entry_is_not_the_anchored_head(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    # Rewriting the last entry and its hash leaves no later link to break; the anchor does.
    await build_chain(caas_layer, shared_tenant, old=3)
    raw = await raw_entries(caas_layer).find_one({"tenant_id": shared_tenant, "seq": 3})
    forged = AuditLog.model_validate({**raw, "action": "x.forged"})
    await raw_entries(caas_layer).update_one(
        {"_id": raw["_id"]}, {"$set": {"action": "x.forged", "hash": forged.compute_hash()}}
    )
    report = await verify(caas_layer, shared_tenant)
    assert not report.ok and report.broken_seq == 3
    assert "not the one the anchor recorded" in (report.reason or "")


async def test_entries_written_around_the_layer_are_reported(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    await build_chain(caas_layer, shared_tenant, old=2)
    async with tenant_scope(shared_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        last = (await audit.trail(newest_first=True)).items[0]
        extra = AuditLog(
            tenant_id=shared_tenant, seq=3, prev_hash=last.hash, action="x.sneaked", hash=""
        )
        extra.hash = extra.compute_hash()
        # The guard lets a tenant insert into its own chain; the anchor's head did not move.
        await audit.collection().insert_one(extra.model_dump(by_alias=True, exclude={"id"}))
        report = await audit.verify_chain()
    assert not report.ok and report.broken_seq == 3
    assert "beyond the anchor's head (seq 2)" in (report.reason or "")


async def test_a_removed_anchor_is_reported_and_the_next_append_adopts_the_chain(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    await build_chain(caas_layer, shared_tenant, old=2)
    await raw_anchors(caas_layer).delete_one({"tenant_id": shared_tenant})
    report = await verify(caas_layer, shared_tenant)
    assert not report.ok and "no anchor" in (report.reason or "")
    async with tenant_scope(shared_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        assert (await audit.append("x.y")).seq == 3
        anchor = await audit.anchor()
        assert anchor is not None and (anchor.adopted_seq, anchor.entry_count) == (2, 3)
        report = await audit.verify_chain()
    assert report.ok and report.checked == 3
    assert "entries up to seq 2 predate the anchor" in (report.note or "")


# -- the anchor under load, and per tenant -------------------------------------------------


async def test_twenty_concurrent_appends_move_the_anchor_to_the_right_head(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    async def append(i: int) -> AuditLog:
        async with tenant_scope(shared_tenant):
            return await caas_layer.repo(AuditLogRepository).append("load.test", details={"i": i})

    entries = await asyncio.gather(*(append(i) for i in range(20)))
    assert sorted(e.seq for e in entries) == list(range(1, 21))
    head = next(e for e in entries if e.seq == 20)
    async with tenant_scope(shared_tenant):
        audit = caas_layer.repo(AuditLogRepository)
        anchor = await audit.anchor()
        assert anchor is not None
        assert (anchor.head_seq, anchor.head_hash, anchor.entry_count) == (20, head.hash, 20)
        assert (anchor.start_seq, anchor.removed) == (1, 0)
        report = await audit.verify_chain()
    assert report.ok and report.checked == 20


async def test_each_tenant_sees_only_its_own_anchor(
    caas_layer: DataLayer, shared_tenant: str, pro_tenant: str
) -> None:
    for tenant, n in ((shared_tenant, 1), (pro_tenant, 2)):
        await build_chain(caas_layer, tenant, old=n)
    for tenant, n in ((shared_tenant, 1), (pro_tenant, 2)):
        async with tenant_scope(tenant):
            seen = await caas_layer.collection(AuditAnchor).find({}).to_list()
            assert [(a["tenant_id"], a["head_seq"]) for a in seen] == [(tenant, n)]
            anchor = await caas_layer.repo(AuditLogRepository).anchor()
            assert anchor is not None and anchor.tenant_id == tenant
