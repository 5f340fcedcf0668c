"""Billing documents: card numbers are refused, invoices derive their totals."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from caas_data.documents.billing import (
    Invoice,
    InvoiceStatus,
    PaymentMethod,
    UsageAggregation,
    UsageMetric,
    contains_card_number,
    luhn_valid,
)

VISA = "4111111111111111"  # a well-known test number: passes Luhn


def method(**overrides: Any) -> PaymentMethod:
    fields: dict[str, Any] = {
        "tenant_id": "acme",
        "processor_token": "pm_1NaBcDeFgHiJkLmN",
        "brand": "visa",
        "last4": "1111",
        "exp_month": 12,
        "exp_year": 2030,
    }
    fields.update(overrides)
    return PaymentMethod(**fields)


@pytest.mark.parametrize(
    ("digits", "valid"),
    [(VISA, True), ("4111111111111112", False), ("79927398713", True), ("0", True)],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    "text",
    [
        VISA,
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "card:4111111111111111;",
        "378282246310005",  # Amex, 15 digits
        "6011 1111 1111 1117 42",  # a card followed by another digit group
    ],
)
def test_card_numbers_are_detected(text: str) -> None:
    assert contains_card_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "pm_1NaBcDeFgHiJkLmN",
        "4111111111111112",  # fails Luhn
        "411111111111",  # 12 digits: too short for a card
        "12345678901234567890123",  # a long number, not a card
        "order 2026-11-26",
    ],
)
def test_other_values_pass(text: str) -> None:
    assert not contains_card_number(text)


@pytest.mark.parametrize("field", ["processor_token", "brand"])
@pytest.mark.parametrize("value", [VISA, "4111 1111 1111 1111", "tok-4111-1111-1111-1111"])
def test_a_full_card_number_is_refused_in_any_field(field: str, value: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="looks like a full card number") as caught:
        method(**{field: value[:32] if field == "brand" else value})
    assert caught.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize("last4", ["111", "11111", "abcd", 1111, VISA])
def test_last4_must_be_exactly_four_digits(last4: object) -> None:
    with pytest.raises(pydantic.ValidationError, match="last4 must be exactly"):
        method(last4=last4)


def test_unknown_fields_are_refused_not_dropped() -> None:
    with pytest.raises(pydantic.ValidationError, match="card_number"):
        method(card_number=VISA)
    with pytest.raises(pydantic.ValidationError, match="cvc"):
        method(cvc="123")


def test_a_valid_method_keeps_only_what_a_receipt_shows() -> None:
    stored = method().model_dump(by_alias=True)
    assert stored["last4"] == "1111"
    assert VISA not in str(stored)


def test_invoice_total_is_derived_from_its_lines() -> None:
    invoice = Invoice(
        tenant_id="acme",
        lines=[
            {"description": "Pro plan", "unit_amount_cents": 4900},
            {"description": "Extra seats", "quantity": 3, "unit_amount_cents": 500},
        ],
        total_cents=1,
    )
    assert invoice.total_cents == 4900 + 1500
    assert invoice.display_number is None


def test_an_issued_invoice_needs_a_number() -> None:
    with pytest.raises(pydantic.ValidationError, match="must carry its number"):
        Invoice(tenant_id="acme", status=InvoiceStatus.ISSUED)
    assert Invoice(tenant_id="acme", status="issued", number=42).display_number == "INV-000042"


def test_counters_sum_and_gauges_peak() -> None:
    assert UsageMetric.MESSAGES_SENT.aggregation is UsageAggregation.SUM
    assert UsageMetric.API_CALLS.aggregation is UsageAggregation.SUM
    assert UsageMetric.STORAGE_BYTES.aggregation is UsageAggregation.MAX
    assert UsageMetric.MONTHLY_ACTIVE_USERS.aggregation is UsageAggregation.MAX
