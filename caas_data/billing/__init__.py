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
from caas_data.repositories.billing.invoices import InvoiceRepository
from caas_data.repositories.billing.subscriptions import (
    PaymentMethodRepository,
    PlanRepository,
    SubscriptionRepository,
    UsageRecordRepository,
)

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
