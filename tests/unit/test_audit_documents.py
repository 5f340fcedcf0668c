"""Audit entries hash a canonical form that survives the BSON round trip."""

from __future__ import annotations

from datetime import UTC, datetime

import bson
import pydantic
import pytest
from bson.codec_options import CodecOptions

from caas_data.documents.analytics import AUDIT_GENESIS_HASH, AuditLog, MetricPeriod


def entry(**overrides: object) -> AuditLog:
    fields: dict[str, object] = {
        "tenant_id": "acme",
        "seq": 1,
        "prev_hash": AUDIT_GENESIS_HASH,
        "action": "api_key.created",
        "actor": "admin:1",
        "target_type": "api_keys",
        "target_id": "abc",
        "details": {"scopes": ["messages:write"], "n": 1, "ratio": 0.5, "nested": {"b": 1}},
        "created_at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    }
    fields.update(overrides)
    log = AuditLog(**fields)
    log.hash = log.compute_hash()
    return log


def test_hash_survives_the_bson_round_trip() -> None:
    log = entry()
    assert log.created_at.microsecond == 678000  # stored precision
    raw = bson.decode(
        bson.encode(log.model_dump(by_alias=True, exclude={"id"})),
        codec_options=CodecOptions(tz_aware=True),
    )
    loaded = AuditLog.model_validate(raw)
    assert loaded.compute_hash() == log.hash


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 2},
        {"prev_hash": "1" * 64},
        {"action": "api_key.revoked"},
        {"actor": None},
        {"target_id": "abd"},
        {"details": {"scopes": ["messages:read"]}},
        {"tenant_id": "other"},
        {"created_at": datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)},
    ],
)
def test_every_field_is_covered_by_the_hash(change: dict[str, object]) -> None:
    assert entry(**change).hash != entry().hash


def test_canonical_form_is_sorted_compact_json() -> None:
    text = entry().canonical().decode()
    assert text.startswith('{"action":"api_key.created","actor":"admin:1","created_at":')
    assert '"created_at":"2026-01-02T03:04:05.678+00:00"' in text


def test_details_must_be_json_values() -> None:
    with pytest.raises(pydantic.ValidationError):
        entry(details={"when": object()})


def test_metric_periods_floor_and_ceil() -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert MetricPeriod.HOUR.floor(moment) == datetime(2026, 3, 4, 5, tzinfo=UTC)
    assert MetricPeriod.HOUR.ceil(moment) == datetime(2026, 3, 4, 6, tzinfo=UTC)
    assert MetricPeriod.DAY.floor(moment) == datetime(2026, 3, 4, tzinfo=UTC)
    assert MetricPeriod.DAY.ceil(moment) == datetime(2026, 3, 5, tzinfo=UTC)
    boundary = datetime(2026, 3, 4, tzinfo=UTC)
    assert MetricPeriod.DAY.ceil(boundary) == boundary
