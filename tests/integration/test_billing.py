"""Billing: one active subscription with history, pending tier changes, gap-free immutable
invoices, card data refused, idempotent usage."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from caas_data import (
    DataLayer,
    DocumentValidationError,
    DuplicateError,
    NotFoundError,
    Tier,
    system_scope,
    tenant_scope,
)
from caas_data.documents.billing import Invoice, InvoiceStatus, SubscriptionStatus, UsageMetric
from caas_data.repositories.analytics.audit import AuditLogRepository
from caas_data.repositories.billing.invoices import InvoiceRepository
from caas_data.repositories.billing.subscriptions import (
    PaymentMethodRepository,
    PlanRepository,
    SubscriptionRepository,
    UsageRecordRepository,
)
from caas_data.saas import User, UserRepository
from caas_data.testing import ServerHandle
from caas_data.testing.helpers import connect_for_tests

from .conftest import Tenants

PLANS = [
    {"code": "free", "name": "Free", "tier": Tier.FREE, "price_cents": 0},
    {"code": "starter", "name": "Starter", "tier": Tier.STARTER, "price_cents": 900},
    {"code": "pro", "name": "Pro", "tier": Tier.PRO, "price_cents": 4900},
    {"code": "enterprise", "name": "Enterprise", "tier": Tier.ENTERPRISE, "price_cents": 99900},
]
LINE = {"description": "Pro plan", "unit_amount_cents": 4900}


async def add_plans(layer: DataLayer) -> None:
    await layer.repo(PlanRepository).create_many(PLANS)


# -- subscriptions -----------------------------------------------------------------------------


async def test_one_active_subscription_per_client(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    await add_plans(caas_layer)
    async with tenant_scope(shared_tenant):
        subscriptions = caas_layer.repo(SubscriptionRepository)
        first = await subscriptions.subscribe("free")
        with pytest.raises(DuplicateError, match="already has an active subscription"):
            await subscriptions.subscribe("starter")
        with pytest.raises(DuplicateError):  # the index holds even past the repository method
            await subscriptions.create(first.model_copy(update={"id": None}))
        assert [s.id for s in await subscriptions.history()] == [first.id]
        with pytest.raises(NotFoundError, match="no active plan"):
            await subscriptions.change_plan("platinum")


@pytest.mark.caas_isolated  # creates the platform-wide plans
async def test_concurrent_first_subscriptions_start_exactly_one(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    await add_plans(caas_layer)
    async with tenant_scope(shared_tenant):
        subscriptions = caas_layer.repo(SubscriptionRepository)
        results = await asyncio.gather(
            *(subscriptions.subscribe("free") for _ in range(10)), return_exceptions=True
        )
        started = [r for r in results if not isinstance(r, BaseException)]
        assert len(started) == 1, results
        assert all(isinstance(r, DuplicateError) for r in results if r not in started)
        assert len(await subscriptions.history()) == 1


@pytest.mark.caas_isolated  # creates the platform-wide plans
@pytest.mark.parametrize("model", ["shared", "pro", "enterprise"])
async def test_a_plan_change_keeps_history_and_records_a_pending_tier(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    await add_plans(caas_layer)
    tenant = model_tenant
    before = await caas_layer.tenants.get(tenant)
    target = Tier.ENTERPRISE if before.tier is not Tier.ENTERPRISE else Tier.STARTER
    async with tenant_scope(tenant):
        await caas_layer.repo(UserRepository).create({"external_id": "u1", "display_name": "Ada"})
        subscriptions = caas_layer.repo(SubscriptionRepository)
        first = await subscriptions.subscribe(before.tier.value)
        assert (await caas_layer.tenants.get(tenant)).pending_tier is None  # same tier
        second = await subscriptions.change_plan(target.value, actor="billing-webhook")
        history = await subscriptions.history()
        assert [s.id for s in history] == [second.id, first.id]
        assert history[1].status is SubscriptionStatus.ENDED and history[1].ended_at is not None
        assert second.previous_id == first.id and second.tier is target
        assert (await subscriptions.get_current_or_none()).id == second.id  # type: ignore[union-attr]
    after = await caas_layer.tenants.get(tenant)
    # Pending, visible, and nothing moved: same tier, same placement, data where it was.
    assert after.pending_tier is target
    assert (after.tier, after.placement) == (before.tier, before.placement)
    assert (await caas_layer.tenants.placement(tenant)).tier is before.tier
    async with tenant_scope(tenant):
        assert (await User.find_one({"external_id": "u1"})) is not None
        trail = (await caas_layer.repo(AuditLogRepository).trail()).items
    now_on = {"plan": target.value, "tier": target.value}
    assert [(e.action, e.actor, e.details) for e in trail] == [
        ("subscription.started", None, {"plan": before.tier.value, "tier": before.tier.value}),
        ("subscription.plan_changed", "billing-webhook", now_on),
        ("tenant.tier_change_requested", "billing-webhook", {"pending_tier": target.value}),
    ]


@pytest.mark.caas_isolated  # creates the platform-wide plans
async def test_changing_back_to_the_current_tier_clears_the_pending_change(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    await add_plans(caas_layer)
    async with system_scope():  # e.g. a billing job, acting for one tenant
        subscriptions = caas_layer.repo(SubscriptionRepository)
        await subscriptions.subscribe("pro", tenant_id=pro_tenant)
        await subscriptions.change_plan("enterprise", tenant_id=pro_tenant)
        assert (await caas_layer.tenants.get(pro_tenant)).pending_tier is Tier.ENTERPRISE
        with pytest.raises(DocumentValidationError, match="already on plan"):
            await subscriptions.change_plan("enterprise", tenant_id=pro_tenant)
        await subscriptions.change_plan("pro", tenant_id=pro_tenant)
        assert (await caas_layer.tenants.get(pro_tenant)).pending_tier is None
        assert len(await subscriptions.history(tenant_id=pro_tenant)) == 3
        canceled = await subscriptions.cancel(tenant_id=pro_tenant)
        assert canceled.status is SubscriptionStatus.CANCELED
        assert await subscriptions.get_current_or_none(tenant_id=pro_tenant) is None
    async with tenant_scope(pro_tenant):
        actions = [e.action for e in (await caas_layer.repo(AuditLogRepository).trail()).items]
    assert actions == [
        "subscription.started",
        "subscription.plan_changed",
        "tenant.tier_change_requested",
        "subscription.plan_changed",
        "tenant.tier_change_cancelled",
        "subscription.canceled",
    ]


# -- invoices ----------------------------------------------------------------------------------


async def test_concurrent_issues_get_unique_gap_free_numbers(
    caas_layer: DataLayer, shared_tenant: str, caas_server: ServerHandle
) -> None:
    async with tenant_scope(shared_tenant):
        invoices = caas_layer.repo(InvoiceRepository)
        drafts = [await invoices.draft([LINE]) for _ in range(20)]
    # Two layers stand for two processes: their transactions conflict on the counter.
    other = await connect_for_tests(caas_server.uri, database_prefix=caas_layer.prefix)
    try:

        async def issue(layer: DataLayer, draft: Invoice) -> Invoice:
            async with tenant_scope(shared_tenant, layer=layer):
                return await layer.repo(InvoiceRepository).issue(draft.id)

        issued = await asyncio.gather(
            *(issue(caas_layer if i % 2 else other, d) for i, d in enumerate(drafts))
        )
    finally:
        await other.close()
    assert sorted(i.number for i in issued) == list(range(1, 21))  # type: ignore[type-var]
    assert all(i.status is InvoiceStatus.ISSUED and i.issued_at for i in issued)


@pytest.mark.caas_isolated  # reads platform-wide state
async def test_invoice_numbers_are_per_client(caas_layer: DataLayer, tenants: Tenants) -> None:
    for tenant in (tenants.shared, tenants.pro, tenants.enterprise, tenants.pro):
        async with tenant_scope(tenant):
            invoices = caas_layer.repo(InvoiceRepository)
            await invoices.issue((await invoices.draft([LINE])).id)
    async with system_scope():
        numbers = {
            (i.tenant_id, i.number) for i in (await caas_layer.repo(InvoiceRepository).find()).items
        }
    assert numbers == {
        (tenants.shared, 1),
        (tenants.pro, 1),
        (tenants.pro, 2),
        (tenants.enterprise, 1),
    }


async def test_an_aborted_issue_gives_its_number_back(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    async with tenant_scope(pro_tenant):
        invoices = caas_layer.repo(InvoiceRepository)
        first, second = await invoices.draft([LINE]), await invoices.draft([LINE])
        with pytest.raises(RuntimeError):
            async with caas_layer.unit_of_work():
                assert (await invoices.issue(first.id)).number == 1
                raise RuntimeError("payment provider down")
        assert (await invoices.get(first.id)).status is InvoiceStatus.DRAFT
        assert (await invoices.issue(second.id)).number == 1
        assert (await invoices.issue(first.id)).number == 2


async def test_issued_invoices_are_immutable(caas_layer: DataLayer, enterprise_tenant: str) -> None:
    async with tenant_scope(enterprise_tenant):
        invoices = caas_layer.repo(InvoiceRepository)
        draft = await invoices.draft([LINE])
        edited = await invoices.update(draft, lines=[LINE, LINE])
        assert edited.total_cents == 9800
        issued = await invoices.issue(draft.id)
        with pytest.raises(DocumentValidationError, match="immutable"):
            await invoices.update(issued, lines=[])
        with pytest.raises(DocumentValidationError, match="immutable"):
            await invoices.save(issued.model_copy(update={"currency": "EUR"}))
        with pytest.raises(DocumentValidationError, match="immutable"):  # even re-labelled
            await invoices.save(issued.model_copy(update={"status": InvoiceStatus.DRAFT}))
        with pytest.raises(DocumentValidationError, match="immutable"):
            await invoices.delete(issued)
        with pytest.raises(DocumentValidationError, match="immutable"):
            await invoices.issue(issued.id)
        with pytest.raises(DocumentValidationError, match="changes only through"):
            await invoices.update(draft, status=InvoiceStatus.PAID)
        assert await invoices.update_many({}, {"currency": "EUR"}) == 0
        # A stale copy of the draft cannot overwrite what was issued either.
        with pytest.raises(DocumentValidationError, match="immutable"):
            await invoices.save(edited)
        stored = await invoices.get(issued.id)
        assert (stored.total_cents, stored.currency, stored.number) == (9800, "USD", 1)
        paid = await invoices.mark_paid(issued.id)
        assert paid.status is InvoiceStatus.PAID and paid.lines == issued.lines
        with pytest.raises(DocumentValidationError, match="only an issued invoice"):
            await invoices.void(issued.id)
        other = await invoices.draft([LINE])
        await invoices.delete(other)  # drafts may go
        with pytest.raises(NotFoundError):
            await invoices.get(other.id)
        assert (await invoices.get_by_number(1)).id == issued.id


# -- payment methods ---------------------------------------------------------------------------


CARD = {
    "processor_token": "pm_1NaBcDeFgHiJkLmN",
    "brand": "visa",
    "last4": "4242",
    "exp_month": 12,
    "exp_year": 2031,
}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"processor_token": "4242 4242 4242 4242"}, "processor_token", "full card number"),
        ({"processor_token": "pm_4242-4242-4242-4242"}, "processor_token", "full card number"),
        ({"brand": "4242424242424242"}, "brand", "full card number"),
        ({"last4": "42"}, "last4", "exactly the last 4 digits"),
        ({"last4": "4242424242424242"}, "last4", "exactly the last 4 digits"),
        ({"card_number": "4242424242424242"}, "card_number", "Extra inputs"),
    ],
)
async def test_card_data_is_refused_with_a_clear_error(
    caas_layer: DataLayer, shared_tenant: str, change: dict[str, str], field: str, message: str
) -> None:
    async with tenant_scope(shared_tenant):
        methods = caas_layer.repo(PaymentMethodRepository)
        with pytest.raises(DocumentValidationError, match=message) as caught:
            await methods.create({**CARD, **change})
        assert caught.value.fields == (field,)
        stored = await methods.create(CARD)
        with pytest.raises(DocumentValidationError) as caught:
            await methods.update(stored, **change)
        assert field in str(caught.value)
        assert await methods.count() == 1
    raw = caas_layer.client[f"{caas_layer.prefix}_billing"]["payment_methods"]
    assert "4242424242424242" not in str(await raw.find({}).to_list(None))


async def test_one_default_payment_method(caas_layer: DataLayer, pro_tenant: str) -> None:
    async with tenant_scope(pro_tenant):
        methods = caas_layer.repo(PaymentMethodRepository)
        first = await methods.attach(**CARD, make_default=True)
        second = await methods.attach(**{**CARD, "processor_token": "pm_2", "last4": "0005"})
        assert (await methods.get_default_or_none()).id == first.id  # type: ignore[union-attr]
        await methods.set_default(second.id)
        assert (await methods.get_default_or_none()).id == second.id  # type: ignore[union-attr]
        assert await methods.count({"is_default": True}) == 1
        with pytest.raises(DuplicateError):
            await methods.create({**CARD, "processor_token": "pm_3", "is_default": True})


# -- usage -------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["shared", "pro", "enterprise"])
async def test_a_retried_usage_report_counts_once(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    async with tenant_scope(model_tenant):
        usage = caas_layer.repo(UsageRecordRepository)
        sent = UsageMetric.MESSAGES_SENT
        retries = (usage.record(sent, 7, idempotency_key="b-1") for _ in range(50))
        reports = await asyncio.gather(*retries)
        assert len({r.id for r in reports}) == 1
        assert await usage.count() == 1
        with pytest.raises(DuplicateError, match="already used for 7 messages_sent"):
            await usage.record(UsageMetric.MESSAGES_SENT, 8, idempotency_key="b-1")

        async def in_transaction() -> None:
            await usage.record(UsageMetric.MESSAGES_SENT, 7, idempotency_key="b-1")
            await usage.record(UsageMetric.MESSAGES_SENT, 3, idempotency_key="batch-2")

        await caas_layer.run_transaction(in_transaction)
        now = datetime.now(UTC)
        totals = await usage.totals(now - timedelta(hours=1), now + timedelta(hours=1))
        assert totals == {UsageMetric.MESSAGES_SENT: 10}


async def test_usage_totals_per_period(caas_layer: DataLayer, tenants: Tenants) -> None:
    day1, day2 = datetime(2026, 3, 1, 10, tzinfo=UTC), datetime(2026, 3, 2, 10, tzinfo=UTC)
    reports = [
        (UsageMetric.MESSAGES_SENT, 100, day1),
        (UsageMetric.MESSAGES_SENT, 50, day1 + timedelta(hours=3)),
        (UsageMetric.MESSAGES_SENT, 25, day2),
        (UsageMetric.STORAGE_BYTES, 1_000, day1),
        (UsageMetric.STORAGE_BYTES, 4_000, day1 + timedelta(hours=1)),
        (UsageMetric.STORAGE_BYTES, 3_000, day2),
        (UsageMetric.MONTHLY_ACTIVE_USERS, 12, day2),
    ]
    async with tenant_scope(tenants.shared):
        usage = caas_layer.repo(UsageRecordRepository)
        for i, (metric, quantity, at) in enumerate(reports):
            await usage.record(metric, quantity, idempotency_key=f"r{i}", occurred_at=at)
    async with tenant_scope(tenants.pro):  # another tenant's usage stays out
        usage = caas_layer.repo(UsageRecordRepository)
        await usage.record(UsageMetric.MESSAGES_SENT, 999, idempotency_key="r0", occurred_at=day1)
    async with tenant_scope(tenants.shared):
        usage = caas_layer.repo(UsageRecordRepository)
        march = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
        assert await usage.totals(*march) == {
            UsageMetric.MESSAGES_SENT: 175,
            UsageMetric.STORAGE_BYTES: 4_000,
            UsageMetric.MONTHLY_ACTIVE_USERS: 12,
        }
        daily = await usage.totals_by_period(*march, unit="day")
        first, second = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
        assert daily == {
            (first, UsageMetric.MESSAGES_SENT): 150,
            (second, UsageMetric.MESSAGES_SENT): 25,
            (first, UsageMetric.STORAGE_BYTES): 4_000,
            (second, UsageMetric.STORAGE_BYTES): 3_000,
            (second, UsageMetric.MONTHLY_ACTIVE_USERS): 12,
        }
        assert await usage.totals(second, march[1]) == {
            UsageMetric.MESSAGES_SENT: 25,
            UsageMetric.STORAGE_BYTES: 3_000,
            UsageMetric.MONTHLY_ACTIVE_USERS: 12,
        }
        with pytest.raises(DocumentValidationError, match="unknown period unit"):
            await usage.totals_by_period(*march, unit="fortnight")
