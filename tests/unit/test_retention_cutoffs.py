"""The one check every retention cutoff passes (no server: it runs before any I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from caas_data.documents.base import utcnow
from caas_data.errors import DocumentValidationError
from caas_data.tenancy.cutoffs import retention_cutoff, retention_limit


def test_a_past_aware_cutoff_is_returned_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    cutoff = datetime(2020, 1, 1, 12, 0, tzinfo=plus_two)
    checked = retention_cutoff(cutoff)
    assert checked == cutoff and checked.tzinfo is UTC and checked.hour == 10


@pytest.mark.parametrize(
    ("cutoff", "message"),
    [
        (utcnow() + timedelta(days=1), "in the future"),
        (datetime.now(timezone(timedelta(hours=14))) + timedelta(days=1), "in the future"),
        (datetime(2020, 1, 1), "timezone-aware"),
        (date(2020, 1, 1), "not date"),
        ("2020-01-01T00:00:00Z", "not str"),
        (None, "not NoneType"),
    ],
    ids=["future", "future-in-another-zone", "naive", "a-date", "a-string", "none"],
)
def test_bad_cutoffs_are_refused_with_the_argument_named(cutoff: object, message: str) -> None:
    with pytest.raises(DocumentValidationError, match=message) as refused:
        retention_cutoff(cutoff, name="before")
    assert refused.value.fields == ("before",)


@pytest.mark.parametrize("limit", [0, -3, True, 1.0, "5", 2**63])
def test_bad_limits_are_refused(limit: object) -> None:
    with pytest.raises(DocumentValidationError, match="positive int"):
        retention_limit(limit)


def test_good_limits_pass() -> None:
    assert retention_limit(None) is None
    assert retention_limit(1) == 1
    assert retention_limit(2**63 - 1) == 2**63 - 1
