"""Billing collections (`{prefix}_billing`): plans, subscriptions, invoices, payments, usage.

Card data never reaches the database: a payment method keeps the processor's token, the brand,
the last four digits and the expiry, and any value that looks like a full card number (13-19
digits passing the Luhn check) is refused at validation.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from beanie import PydanticObjectId
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pymongo import ASCENDING, DESCENDING, IndexModel

from caas_data.documents.base import (
    Area,
    BaseDocument,
    PlatformDocument,
    TenantAccess,
    TenantOwnedDocument,
)
from caas_data.tenancy.tiers import Tier

__all__ = [
    "DOCUMENTS",
    "BillingInterval",
    "Invoice",
    "InvoiceLine",
    "InvoiceStatus",
    "PaymentMethod",
    "Plan",
    "Subscription",
    "SubscriptionStatus",
    "UsageAggregation",
    "UsageMetric",
    "UsageRecord",
    "contains_card_number",
    "luhn_valid",
]

_CODE = r"^[a-z][a-z0-9_-]{1,63}$"
_CURRENCY = r"^[A-Z]{3}$"


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value


# -- card numbers ---------------------------------------------------------------------------

# Runs of digits, single spaces or dashes allowed between them ("4111 1111-1111 1111").
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d)*")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def contains_card_number(text: str) -> bool:
    """True when `text` holds 13-19 digits (spaces/dashes allowed) that pass the Luhn check.

    A run with separators is also checked group by group, so a card number followed by
    other digit groups ("4111 1111 1111 1111 42") is still caught.
    """
    for run in _DIGIT_RUN.finditer(text):
        groups = re.split(r"[ -]", run.group())
        for start in range(len(groups)):
            digits = ""
            for group in groups[start:]:
                digits += group
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and luhn_valid(digits):
                    return True
    return False


def _refuse_card_number(value: str, field: str) -> str:
    if contains_card_number(value):
        raise ValueError(
            f"{field} looks like a full card number: store the processor's token and the "
            "last four digits, never the card number"
        )
    return value


# -- plans and subscriptions ----------------------------------------------------------------


class BillingInterval(StrEnum):
    """How often a plan is billed."""

    MONTH = "month"
    YEAR = "year"


class UsageAggregation(StrEnum):
    """How a period's records of one metric add up."""

    SUM = "sum"  # counters: messages, API calls
    MAX = "max"  # gauges: storage in use, monthly active users


class UsageMetric(StrEnum):
    """What is metered."""

    MESSAGES_SENT = "messages_sent"
    API_CALLS = "api_calls"
    STORAGE_BYTES = "storage_bytes"
    MONTHLY_ACTIVE_USERS = "mau"

    @property
    def aggregation(self) -> UsageAggregation:
        """Sum for counters, max for gauges."""
        if self in (UsageMetric.STORAGE_BYTES, UsageMetric.MONTHLY_ACTIVE_USERS):
            return UsageAggregation.MAX
        return UsageAggregation.SUM


class Plan(PlatformDocument):
    """A price plan; it names the tier (and so the isolation model) a subscriber gets."""

    caas_tenant_access: ClassVar[TenantAccess] = TenantAccess.READ

    caas_area: ClassVar[Area] = Area.BILLING

    code: str = Field(pattern=_CODE, description="Stable identifier, e.g. `pro-monthly`.")
    name: str = Field(min_length=1, max_length=100)
    tier: Tier
    price_cents: int = Field(ge=0)
    currency: str = Field(default="USD", pattern=_CURRENCY)
    interval: BillingInterval = BillingInterval.MONTH
    limits: dict[UsageMetric, int] = Field(default_factory=dict)
    active: bool = True

    class Settings:
        name = "plans"
        indexes = [IndexModel([("code", ASCENDING)], unique=True, name="code_unique")]


class SubscriptionStatus(StrEnum):
    """Lifecycle of a subscription; only one per client is active."""

    ACTIVE = "active"
    ENDED = "ended"  # replaced by a plan change
    CANCELED = "canceled"


class Subscription(TenantOwnedDocument):
    """A client's subscription to a plan; a plan change ends it and starts a new one."""

    caas_area: ClassVar[Area] = Area.BILLING
    # Only `SubscriptionRepository.subscribe/change_plan/cancel` write these: a raw update
    # would give a client a plan (and a tier) it does not pay for.
    caas_protected_fields: ClassVar[frozenset[str]] = frozenset(
        {"plan_id", "plan_code", "tier", "status", "started_at", "ended_at", "previous_id"}
    )

    plan_id: PydanticObjectId
    plan_code: str = Field(pattern=_CODE)
    tier: Tier
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE
    started_at: datetime
    ended_at: datetime | None = None
    previous_id: PydanticObjectId | None = None

    class Settings:
        name = "subscriptions"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING)],
                unique=True,
                partialFilterExpression={"status": SubscriptionStatus.ACTIVE.value},
                name="tenant_one_active",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("started_at", DESCENDING)], name="tenant_started"
            ),
        ]

    @field_validator("started_at", "ended_at")
    @classmethod
    def _aware_dates(cls, value: datetime | None, info: Any) -> datetime | None:
        return _aware(value, info.field_name)


# -- invoices ---------------------------------------------------------------------------------


class InvoiceStatus(StrEnum):
    """Drafts are editable; from `issued` on, the invoice's content never changes."""

    DRAFT = "draft"
    ISSUED = "issued"
    PAID = "paid"
    VOID = "void"


class InvoiceLine(BaseModel):
    """One line of an invoice."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str = Field(min_length=1, max_length=500)
    quantity: int = Field(default=1, ge=1)
    unit_amount_cents: int = Field(ge=0)

    @property
    def amount_cents(self) -> int:
        """Quantity times unit amount."""
        return self.quantity * self.unit_amount_cents


class Invoice(TenantOwnedDocument):
    """A client's invoice. Numbered (gap-free per client) when issued; immutable from then."""

    caas_area: ClassVar[Area] = Area.BILLING
    # Only `InvoiceRepository.issue/mark_paid/void` number and settle an invoice, and only
    # drafts change by any other path (Beanie's API and raw updates included).
    caas_protected_fields: ClassVar[frozenset[str]] = frozenset(
        {"number", "status", "issued_at", "paid_at", "voided_at"}
    )
    caas_writable_when: ClassVar[dict[str, Any]] = {"status": "draft"}

    number: int | None = Field(default=None, ge=1, description="Set when issued.")
    status: InvoiceStatus = InvoiceStatus.DRAFT
    subscription_id: PydanticObjectId | None = None
    currency: str = Field(default="USD", pattern=_CURRENCY)
    lines: list[InvoiceLine] = Field(default_factory=list, max_length=500)
    total_cents: int = Field(default=0, ge=0, description="Derived from the lines.")
    period_start: datetime | None = None
    period_end: datetime | None = None
    issued_at: datetime | None = None
    due_at: datetime | None = None
    paid_at: datetime | None = None
    voided_at: datetime | None = None

    class Settings:
        name = "invoices"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("number", ASCENDING)],
                unique=True,
                partialFilterExpression={"number": {"$type": "number"}},
                name="tenant_number_unique",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("status", ASCENDING), ("created_at", DESCENDING)],
                name="tenant_status_created",
            ),
        ]

    @model_validator(mode="after")
    def _derived(self) -> Invoice:
        self.total_cents = sum(line.amount_cents for line in self.lines)
        if self.status is not InvoiceStatus.DRAFT and self.number is None:
            raise ValueError(f"a {self.status} invoice must carry its number")
        return self

    @property
    def display_number(self) -> str | None:
        """`INV-000042`, once issued."""
        return None if self.number is None else f"INV-{self.number:06d}"


# -- payment methods ---------------------------------------------------------------------------


class PaymentMethod(TenantOwnedDocument, extra="forbid"):
    """A card on file, as the processor's token plus what a receipt shows; never the number.

    Unknown fields are refused (not silently dropped), so card data sent under another name
    is an error too.
    """

    caas_area: ClassVar[Area] = Area.BILLING

    processor: str = Field(default="stripe", pattern=_CODE)
    processor_token: str = Field(min_length=4, max_length=255, repr=False)
    brand: str = Field(min_length=1, max_length=32)
    last4: str
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)
    is_default: bool = False

    class Settings:
        name = "payment_methods"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("processor_token", ASCENDING)],
                unique=True,
                name="tenant_token_unique",
            ),
            IndexModel(
                [("tenant_id", ASCENDING)],
                unique=True,
                partialFilterExpression={"is_default": True},
                name="tenant_one_default",
            ),
        ]

    @field_validator("processor_token", "brand")
    @classmethod
    def _no_card_number(cls, value: str, info: Any) -> str:
        return _refuse_card_number(value, info.field_name)

    @field_validator("last4", mode="before")
    @classmethod
    def _last4(cls, value: Any) -> str:
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}", value):
            raise ValueError("last4 must be exactly the last 4 digits of the card, as a string")
        return value


# -- metered usage -----------------------------------------------------------------------------


class UsageRecord(TenantOwnedDocument):
    """One report of metered usage; the idempotency key makes a retried report count once."""

    caas_area: ClassVar[Area] = Area.BILLING
    # What was reported is what is billed: reports are added, never edited.
    caas_protected_fields: ClassVar[frozenset[str]] = frozenset(
        {"metric", "quantity", "idempotency_key", "occurred_at"}
    )

    metric: UsageMetric
    quantity: int = Field(ge=0)
    idempotency_key: str = Field(min_length=1, max_length=200)
    occurred_at: datetime

    class Settings:
        name = "usage_records"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("idempotency_key", ASCENDING)],
                unique=True,
                name="tenant_idempotency_unique",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("created_at", DESCENDING)], name="tenant_created"
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("metric", ASCENDING), ("occurred_at", ASCENDING)],
                name="tenant_metric_occurred",
            ),
        ]

    @field_validator("occurred_at")
    @classmethod
    def _aware_occurred(cls, value: datetime) -> datetime:
        result = _aware(value, "occurred_at")
        assert result is not None
        return result


DOCUMENTS: tuple[type[BaseDocument], ...] = (
    Plan,
    Subscription,
    Invoice,
    PaymentMethod,
    UsageRecord,
)
