"""Billing repositories: plans, subscriptions, invoices, payment methods and metered usage.

Usage reports carry an idempotency key, so a retried report counts once. Invoices have their
own module (`caas_data.repositories.billing.invoices`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from caas_data.documents.base import utcnow
from caas_data.documents.billing import (
    PaymentMethod,
    Plan,
    Subscription,
    SubscriptionStatus,
    UsageAggregation,
    UsageMetric,
    UsageRecord,
)
from caas_data.engine.clusters import HOME_CLUSTER
from caas_data.engine.transactions import in_transaction, transaction
from caas_data.errors import (
    DocumentValidationError,
    DuplicateError,
    NotFoundError,
    VersionConflict,
)
from caas_data.repositories.analytics.audit import chain_transaction
from caas_data.repositories.audited import AuditedRepository
from caas_data.repositories.base import Repository
from caas_data.repositories.owned import owned_scope, scope_tenant
from caas_data.repositories.platform.directory import SaasClientRepository

__all__ = [
    "PaymentMethodRepository",
    "PlanRepository",
    "SubscriptionRepository",
    "UsageRecordRepository",
]


class PlanRepository(Repository[Plan]):
    """The price plans on offer (platform-wide)."""

    document_type = Plan

    async def get_by_code(self, code: str, *, active_only: bool = False) -> Plan:
        """The plan with this code; `NotFoundError` if none (or not active, if asked)."""
        plan = await self.find_one({"code": code})
        if plan is None or (active_only and not plan.active):
            state = "active " if active_only else ""
            raise NotFoundError(f"no {state}plan with code {code!r}", document_type=Plan)
        return plan

    async def list_active(self) -> list[Plan]:
        """Every plan open to new subscriptions, cheapest first."""
        return (await self.find({"active": True}, sort="price_cents", limit=1000)).items


class SubscriptionRepository(AuditedRepository[Subscription]):
    """A client's subscriptions: one active at a time, past ones kept as history.

    Starting, changing and cancelling are audited in the tenant's chain. Subscribing to (or
    changing to) a plan of another tier records a pending tier change on the tenant; the
    data does not move here.
    """

    document_type = Subscription
    audit_target = "subscription"

    async def get_current_or_none(self, *, tenant_id: str | None = None) -> Subscription | None:
        """The active subscription, or None."""
        async with owned_scope(self._layer, scope_tenant(tenant_id)):
            return await self.find_one({"status": SubscriptionStatus.ACTIVE.value})

    async def history(self, *, tenant_id: str | None = None) -> list[Subscription]:
        """Every subscription of the client, newest first."""
        async with owned_scope(self._layer, scope_tenant(tenant_id)):
            return (await self.find(sort="-started_at", limit=1000)).items

    async def subscribe(
        self, plan_code: str, *, tenant_id: str | None = None, actor: str | None = None
    ) -> Subscription:
        """Start the client's first (or next, after a cancellation) subscription.

        Raises:
            DuplicateError: the client already has an active subscription (use
                `change_plan`).
            NotFoundError: no active plan has this code.
        """
        tenant = scope_tenant(tenant_id)
        plan = await self._layer.repo(PlanRepository).get_by_code(plan_code, active_only=True)

        async def start() -> Subscription:
            try:
                return await self._create(self._new(tenant, plan, previous=None), privileged=True)
            except DuplicateError as exc:
                raise DuplicateError(
                    f"tenant {tenant!r} already has an active subscription: use change_plan()",
                    key=exc.key,
                    tenant_id=tenant,
                    document_type=Subscription,
                ) from exc

        return await self._change(tenant, plan, start, "started", actor)

    async def change_plan(
        self, plan_code: str, *, tenant_id: str | None = None, actor: str | None = None
    ) -> Subscription:
        """End the active subscription and start one on `plan_code`, in one transaction.

        Raises:
            NotFoundError: no active subscription, or no active plan with this code.
            DocumentValidationError: the client is already on this plan.
        """
        tenant = scope_tenant(tenant_id)
        plan = await self._layer.repo(PlanRepository).get_by_code(plan_code, active_only=True)

        async def replace() -> Subscription:
            active = await self._end_active(SubscriptionStatus.ENDED, tenant, same_plan=plan.code)
            return await self._create(self._new(tenant, plan, previous=active), privileged=True)

        return await self._change(tenant, plan, replace, "plan_changed", actor)

    async def cancel(
        self, *, tenant_id: str | None = None, actor: str | None = None
    ) -> Subscription:
        """Cancel the active subscription; `NotFoundError` if there is none."""
        tenant = scope_tenant(tenant_id)

        async def end() -> Subscription:
            ended = await self._end_active(SubscriptionStatus.CANCELED, tenant)
            return await self.get(ended.id)

        async with owned_scope(self._layer, tenant):
            return await self._audited(
                end, lambda s: self._record("canceled", s, plan=s.plan_code), actor=actor
            )

    async def _change(
        self,
        tenant: str,
        plan: Plan,
        write: Callable[[], Awaitable[Subscription]],
        action: str,
        actor: str | None,
    ) -> Subscription:
        """Run `write`, audit it, and record the tier it implies, in one transaction."""

        async def body() -> Subscription:
            subscription = await self._audited(
                write,
                lambda s: self._record(action, s, plan=s.plan_code, tier=s.tier.value),
                actor=actor,
            )
            await self._layer.repo(SaasClientRepository).request_tier_change(
                plan.tier, tenant_id=tenant, actor=actor
            )
            return subscription

        async with owned_scope(self._layer, tenant):
            return await chain_transaction(self._layer, tenant, body)

    def _new(self, tenant: str, plan: Plan, *, previous: Subscription | None) -> Subscription:
        return self._validate(
            {
                "tenant_id": tenant,
                "plan_id": plan.id,
                "plan_code": plan.code,
                "tier": plan.tier,
                "started_at": utcnow(),
                "previous_id": None if previous is None else previous.id,
            }
        )

    async def _end_active(
        self, status: SubscriptionStatus, tenant: str, *, same_plan: str | None = None
    ) -> Subscription:
        active = await self.find_one({"status": SubscriptionStatus.ACTIVE.value})
        if active is None:
            raise NotFoundError(
                "the client has no active subscription",
                tenant_id=tenant,
                document_type=Subscription,
            )
        if same_plan is not None and active.plan_code == same_plan:
            raise DocumentValidationError(
                f"the client is already on plan {same_plan!r}",
                fields=("plan_code",),
                tenant_id=tenant,
                document_type=Subscription,
            )
        # Subscriptions are protected documents: only this repository moves them.
        result = (
            await self.collection()
            ._privileged()
            .update_one(
                {"_id": active.id, "status": SubscriptionStatus.ACTIVE.value},
                {"$set": {"status": status.value, "ended_at": utcnow()}},
            )
        )
        if result.matched_count != 1:
            raise VersionConflict(
                "the active subscription changed concurrently",
                tenant_id=tenant,
                document_type=Subscription,
            )
        return active


class PaymentMethodRepository(Repository[PaymentMethod]):
    """Cards on file as processor tokens; at most one default per client."""

    document_type = PaymentMethod

    async def attach(
        self,
        *,
        processor_token: str,
        brand: str,
        last4: str,
        exp_month: int,
        exp_year: int,
        processor: str = "stripe",
        make_default: bool = False,
    ) -> PaymentMethod:
        """Store a payment method (validated first: a full card number is refused)."""
        method = self._validate(
            {
                "processor": processor,
                "processor_token": processor_token,
                "brand": brand,
                "last4": last4,
                "exp_month": exp_month,
                "exp_year": exp_year,
            }
        )
        if not make_default:
            return await self.create(method)

        async def write() -> PaymentMethod:
            created = await self.create(method)
            return await self.set_default(created.id)

        return await transaction(self._layer, write, cluster=HOME_CLUSTER)

    async def set_default(self, method_id: Any) -> PaymentMethod:
        """Make this method the default, and no other (one transaction)."""
        document_id = self._id(method_id)

        async def write() -> PaymentMethod:
            collection = self.collection()
            await collection.update_many(
                {"is_default": True, "_id": {"$ne": document_id}}, {"$set": {"is_default": False}}
            )
            result = await collection.update_one(
                {"_id": document_id}, {"$set": {"is_default": True}}
            )
            if result.matched_count != 1:
                raise NotFoundError(
                    f"payment method {document_id} not found", document_type=PaymentMethod
                )
            return await self.get(document_id)

        return await transaction(self._layer, write, cluster=HOME_CLUSTER)

    async def get_default_or_none(self) -> PaymentMethod | None:
        """The default method, or None."""
        return await self.find_one({"is_default": True})


class UsageRecordRepository(Repository[UsageRecord]):
    """Metered usage of the scope's tenant, idempotent per report key."""

    document_type = UsageRecord

    async def record(
        self,
        metric: UsageMetric,
        quantity: int,
        *,
        idempotency_key: str,
        occurred_at: datetime | None = None,
    ) -> UsageRecord:
        """Store a usage report once: a retry with the same key returns the first record.

        Raises:
            DuplicateError: the key was already used for a different report.
        """
        record = self._validate(
            {
                "metric": metric,
                "quantity": quantity,
                "idempotency_key": idempotency_key,
                "occurred_at": occurred_at or utcnow(),
            }
        )
        if in_transaction():
            # A duplicate key would abort the transaction: look before inserting.
            existing = await self.find_one({"idempotency_key": idempotency_key})
            if existing is not None:
                return self._same_report(existing, record)
        try:
            return await self.create(record)
        except DuplicateError:
            existing = await self.find_one({"idempotency_key": idempotency_key})
            if existing is None:
                raise
            return self._same_report(existing, record)

    @staticmethod
    def _same_report(existing: UsageRecord, retried: UsageRecord) -> UsageRecord:
        if (existing.metric, existing.quantity) != (retried.metric, retried.quantity):
            raise DuplicateError(
                f"idempotency key {existing.idempotency_key!r} was already used for "
                f"{existing.quantity} {existing.metric}, not {retried.quantity} {retried.metric}",
                key={"idempotency_key": existing.idempotency_key},
                tenant_id=existing.tenant_id,
                document_type=UsageRecord,
            )
        return existing

    async def totals(self, start: datetime, end: datetime) -> dict[UsageMetric, int]:
        """Usage per metric over [start, end): sums for counters, peaks for gauges."""
        rows = await self._aggregate(start, end, None)
        return {metric: value for (_, metric), value in rows.items()}

    async def totals_by_period(
        self, start: datetime, end: datetime, *, unit: str = "day"
    ) -> dict[tuple[datetime, UsageMetric], int]:
        """Usage per (period start, metric) over [start, end); `unit` is day, week or month."""
        if unit not in ("hour", "day", "week", "month"):
            raise DocumentValidationError(f"unknown period unit {unit!r}", fields=("unit",))
        return await self._aggregate(start, end, unit)

    async def _aggregate(
        self, start: datetime, end: datetime, unit: str | None
    ) -> dict[tuple[Any, UsageMetric], int]:
        period: Any = (
            None if unit is None else {"$dateTrunc": {"date": "$occurred_at", "unit": unit}}
        )
        cursor = await self.collection().aggregate(
            [
                {"$match": {"occurred_at": {"$gte": start, "$lt": end}}},
                {
                    "$group": {
                        "_id": {"period": period, "metric": "$metric"},
                        "sum": {"$sum": "$quantity"},
                        "max": {"$max": "$quantity"},
                    }
                },
            ]
        )
        result: dict[tuple[Any, UsageMetric], int] = {}
        async for row in cursor:
            metric = UsageMetric(row["_id"]["metric"])
            kind = metric.aggregation
            result[(row["_id"]["period"], metric)] = int(
                row["sum"] if kind is UsageAggregation.SUM else row["max"]
            )
        return result
