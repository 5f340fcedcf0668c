"""Repositories of the billing documents (`caas_data.documents.billing`)."""

from caas_data.repositories.billing.invoices import INVOICE_COUNTER, InvoiceRepository
from caas_data.repositories.billing.subscriptions import (
    PaymentMethodRepository,
    PlanRepository,
    SubscriptionRepository,
    UsageRecordRepository,
)

__all__ = [
    "INVOICE_COUNTER",
    "InvoiceRepository",
    "PaymentMethodRepository",
    "PlanRepository",
    "SubscriptionRepository",
    "UsageRecordRepository",
]
