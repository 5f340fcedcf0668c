"""The server's `failCommand` fail point: transient transaction errors, write conflicts,
connections closed on inserts, updates and findAndModify, shutdown errors, write-concern
errors, commits without an answer. Every call succeeds or raises a `CaasDataError` within the
budget; afterwards no partial state: group counts match members, invoice numbers are 1..N,
audit chains verify, conversation seqs are 1..N."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from pymongo.asynchronous.client_session import AsyncClientSession

from caas_data import DataLayer, RetryableError, WriteOutcomeUnknown, tenant_scope
from caas_data.analytics import AuditLogRepository
from caas_data.billing import InvoiceRepository
from caas_data.repositories.saas.messaging import MessageRepository
from caas_data.saas import (
    GroupMember,
    GroupMemberRepository,
    GroupRepository,
    GroupRole,
    User,
    UserRepository,
)
from caas_data.services.retention import RetentionService
from caas_data.testing import Factories
from caas_data.testing.load_checks import check_gap_free
from tests.faults.conftest import fail_point
from tests.faults.helpers import bounded, chat

TRANSIENT = {"errorCode": 112, "errorLabels": ["TransientTransactionError"]}


async def _retry_once(call: Any) -> Any:
    """A client's retry of a call that raised `RetryableError` (same idempotency keys)."""
    try:
        return await bounded(call())
    except RetryableError:
        return await bounded(call())


async def _assert_consistent(layer: DataLayer, group_id: Any, conversation_id: Any) -> None:
    groups = layer.repo(GroupRepository)
    group = await groups.get(group_id)
    members = (await layer.repo(GroupMemberRepository).list_by_group(group_id, limit=100)).items
    assert group.member_count == len(members), "member count differs from the members"
    assert group.owner_count == sum(1 for m in members if m.role == GroupRole.OWNER)
    invoices = await layer.repo(InvoiceRepository).find({"number": {"$type": "number"}}, limit=100)
    numbers = sorted(i.number for i in invoices.items if i.number is not None)
    assert numbers == list(range(1, len(numbers) + 1)), f"invoice numbers skip: {numbers}"
    report = await layer.repo(AuditLogRepository).verify_chain()
    assert report.ok, report


async def test_transient_transaction_errors_are_retried(
    layer: DataLayer, raw: Any, pro_tenant: str
) -> None:
    async with tenant_scope(pro_tenant, layer=layer):
        factories = Factories(layer)
        owner, newcomer = await factories.users(2)
        group = await factories.group(owner=owner)
        draft = await factories.invoice_draft()
        async with fail_point(raw, {"times": 2}, failCommands=["insert", "update"], **TRANSIENT):
            member = await bounded(
                layer.repo(GroupRepository).join(group.id, newcomer.id, actor=owner.id)
            )
        assert member.role == GroupRole.MEMBER
        async with fail_point(raw, {"times": 2}, failCommands=["findAndModify"], **TRANSIENT):
            issued = await bounded(layer.repo(InvoiceRepository).issue(draft.id))
        assert issued.number == 1
        await _assert_consistent(layer, group.id, None)


@pytest.mark.parametrize("command", ["insert", "update", "findAndModify"])
async def test_closed_connections_leave_no_partial_state(
    layer: DataLayer, raw: Any, pro_tenant: str, command: str
) -> None:
    async with tenant_scope(pro_tenant, layer=layer):
        factories = Factories(layer)
        owner, a, b = await factories.users(3)
        group = await factories.group(owner=owner, members=[a])
        people, conversation = await chat(layer, factories)
        drafts = [await factories.invoice_draft() for _ in range(2)]
        audit = layer.repo(AuditLogRepository)
        groups = layer.repo(GroupRepository)
        messages = layer.repo(MessageRepository)
        steps = [
            lambda: groups.join(group.id, b.id, actor=owner.id),
            lambda: groups.set_role(group.id, a.id, GroupRole.ADMIN, actor=owner.id),
            lambda: groups.leave(group.id, b.id),
            lambda: layer.repo(InvoiceRepository).issue(drafts[0].id),
            lambda: audit.append("fault.test", actor="t", idempotency_key="k-1"),
            lambda: messages.send(conversation.id, people[0], text="x", client_message_id="c1"),
        ]
        for step in steps:
            async with fail_point(raw, {"times": 1}, failCommands=[command], closeConnection=True):
                await _retry_once(step)
        await layer.repo(InvoiceRepository).issue(drafts[1].id)
        await _assert_consistent(layer, group.id, conversation.id)
        entries = await audit.trail(limit=100)
        assert sum(1 for e in entries.items if e.idempotency_key == "k-1") == 1
    assert await check_gap_free(layer, pro_tenant, [conversation.id]) == []


@pytest.mark.parametrize("code", [91, 11600])
async def test_shutdown_errors_are_retryable_and_never_raw(
    layer: DataLayer, raw: Any, pro_tenant: str, code: int
) -> None:
    async with tenant_scope(pro_tenant, layer=layer):
        await Factories(layer).users(2)
        for failing, call in [
            ("find", lambda: User.find(User.tenant_id == pro_tenant).to_list()),
            ("find", lambda: layer.repo(UserRepository).find({}, limit=5)),
            (
                "insert",
                lambda: layer.repo(UserRepository).create(
                    {"external_id": f"x{code}", "display_name": "X"}
                ),
            ),
        ]:
            async with fail_point(raw, {"times": 1}, failCommands=[failing], errorCode=code):
                with pytest.raises(RetryableError):
                    await bounded(call())


async def test_reads_iterated_by_the_layer_translate_errors(
    layer: DataLayer, raw: Any, pro_tenant: str
) -> None:
    """Issue 17: group membership changes, `verify_chain` and Beanie's `to_list` used to let a
    raw `AutoReconnect` escape while iterating; now each is a `RetryableError` (or works)."""
    async with tenant_scope(pro_tenant, layer=layer):
        factories = Factories(layer)
        owner, a, b = await factories.users(3)
        group = await factories.group(owner=owner, members=[a, b])
        await layer.repo(AuditLogRepository).append("fault.read", actor="t")
        groups = layer.repo(GroupRepository)
        calls = [
            lambda: GroupMember.find(GroupMember.group_id == group.id).to_list(),
            lambda: layer.repo(AuditLogRepository).verify_chain(),
            lambda: groups.kick(group.id, b.id, actor=owner.id),
            lambda: groups.transfer_ownership(group.id, from_user_id=owner.id, to_user_id=a.id),
        ]
        for call in calls:
            async with fail_point(raw, {"times": 1}, failCommands=["find"], closeConnection=True):
                with contextlib.suppress(RetryableError):
                    await bounded(call())
        await _assert_consistent(layer, group.id, None)


async def test_apply_all_reports_each_failing_tenant_and_goes_on(
    layer: DataLayer, raw: Any, pro_tenant: str
) -> None:
    retention = RetentionService(layer)
    # The directory is read first; every read after it fails (the fail point stays on).
    async with fail_point(raw, {"skip": 1}, failCommands=["find"], closeConnection=True):
        reports = await bounded(retention.apply_all())
    assert [r.tenant_id for r in reports] == [pro_tenant]
    assert not reports[0].ok and isinstance(reports[0].error, RetryableError)
    assert [r.ok for r in await retention.apply_all()] == [True]


async def test_a_write_concern_error_is_a_may_or_may_not_have_run_error(
    layer: DataLayer, raw: Any, pro_tenant: str
) -> None:
    wce = {"writeConcernError": {"code": 64, "errmsg": "waiting for replication timed out"}}
    async with tenant_scope(pro_tenant, layer=layer):
        factories = Factories(layer)
        users = layer.repo(UserRepository)
        async with fail_point(raw, {"times": 1}, failCommands=["insert"], **wce):
            with pytest.raises(WriteOutcomeUnknown):
                await bounded(users.create({"external_id": "wce", "display_name": "W"}))
        assert (await users.get_by_external_id("wce")).external_id == "wce"  # it did run
        people, conversation = await chat(layer, factories)
        messages = layer.repo(MessageRepository)
        await messages.send(conversation.id, people[0], text="first")  # the counter exists
        async with fail_point(raw, {"times": 1}, failCommands=["insert"], **wce):
            # The message insert ran but was not confirmed: the send's retry finds it.
            sent = await bounded(
                messages.send(conversation.id, people[0], text="x", client_message_id="w1")
            )
        assert await messages.count({"client_message_id": "w1"}) == 1 and sent.seq == 2


async def test_an_unanswered_commit_backs_off_within_the_budget(
    layer: DataLayer, raw: Any, pro_tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17 saw 1,205 commit attempts in 3 s against a failing server."""
    attempts = 0
    commit = AsyncClientSession.commit_transaction

    async def counted(self: AsyncClientSession) -> None:
        nonlocal attempts
        attempts += 1
        await commit(self)

    async with tenant_scope(pro_tenant, layer=layer):
        factories = Factories(layer)
        owner, newcomer = await factories.users(2)
        group = await factories.group(owner=owner)
        monkeypatch.setattr(AsyncClientSession, "commit_transaction", counted)
        async with fail_point(raw, "alwaysOn", failCommands=["commitTransaction"], errorCode=91):
            with pytest.raises(WriteOutcomeUnknown):
                await bounded(
                    layer.repo(GroupRepository).join(group.id, newcomer.id, actor=owner.id)
                )
        monkeypatch.undo()
        print(f"commit attempts within the budget: {attempts}")
        # The driver's own commit retry and server selection may use most of the budget:
        # what matters is that attempts are paced, not the 1,205 of a hot loop.
        assert 1 <= attempts < 60
