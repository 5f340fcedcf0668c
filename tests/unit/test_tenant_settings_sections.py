"""Settings sections: defaults, strict types, bounds, and no unknown names."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from caas_data.documents.saas.settings import (
    MAX_RETENTION_DAYS,
    MIB,
    FeatureSettings,
    LimitSettings,
    RetentionSettings,
    TenantSettings,
)


def test_defaults_suit_a_new_tenant() -> None:
    settings = TenantSettings(tenant_id="t")
    assert settings.retention == RetentionSettings(
        message_retention_days=None, media_retention_days=None, deleted_content_retention_days=30
    )
    assert settings.limits.max_file_bytes == 100 * MIB
    assert settings.limits.max_group_members == 1024
    assert settings.features.e2ee is False and settings.features.read_receipts is True


@pytest.mark.parametrize("days", [1, 365, MAX_RETENTION_DAYS, None])
def test_retention_accepts_one_day_to_ten_years_or_forever(days: int | None) -> None:
    assert RetentionSettings(message_retention_days=days).message_retention_days == days


@pytest.mark.parametrize("days", [0, -1, MAX_RETENTION_DAYS + 1, "30", 1.5])
def test_retention_refuses_other_values(days: object) -> None:
    with pytest.raises(ValidationError) as caught:
        RetentionSettings(message_retention_days=days)
    assert caught.value.errors()[0]["loc"][0] == "message_retention_days"


@pytest.mark.parametrize(
    ("section", "values"),
    [
        (LimitSettings, {"max_group_members": 1}),
        (LimitSettings, {"max_file_bytes": 0}),
        (LimitSettings, {"max_message_length": True}),
        (LimitSettings, {"max_members": 5}),
        (FeatureSettings, {"search": 1}),
        (FeatureSettings, {"serach": False}),
    ],
)
def test_sections_are_strict_and_closed(section: type, values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        section(**values)


def test_stored_documents_missing_new_settings_get_their_defaults() -> None:
    stored = TenantSettings.model_validate(
        {"tenant_id": "t", "limits": {"max_group_members": 50}, "__v": 3}
    )
    assert stored.limits.max_group_members == 50
    assert stored.limits.max_file_bytes == 100 * MIB and stored.version == 3
