"""The billing area (seed: billing/): plans, subscriptions, invoices, usage, payment methods."""

from caas_data.documents.billing import (
    BillingInterval,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    PaymentMethod,
    Plan,
    Subscription,
    SubscriptionStatus,
    UsageMetric,
    UsageRecord,
)
from caas_data.repositories.billing import (
    PaymentMethodRepository,
    PlanRepository,
    SubscriptionRepository,
    UsageRecordRepository,
)
from caas_data.repositories.invoices import InvoiceRepository

__all__ = [
    "BillingInterval",
    "Invoice",
    "InvoiceLine",
    "InvoiceRepository",
    "InvoiceStatus",
    "PaymentMethod",
    "PaymentMethodRepository",
    "Plan",
    "PlanRepository",
    "Subscription",
    "SubscriptionRepository",
    "SubscriptionStatus",
    "UsageMetric",
    "UsageRecord",
    "UsageRecordRepository",
]
