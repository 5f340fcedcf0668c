"""Tenant settings: defaults without writes, partial section updates, validation, versions."""

from __future__ import annotations

import asyncio

import pytest

from caas_data import DataLayer, DocumentValidationError, VersionConflict, tenant_scope
from caas_data.documents.saas.settings import MIB, SettingsSection, TenantSettings
from caas_data.repositories.saas.settings import TenantSettingsRepository

from .conftest import MODEL_TIERS as TIERS
from .conftest import Tenants, raw_collection


@pytest.mark.parametrize("model", ["shared", "pro", "enterprise"])
async def test_defaults_are_read_without_writing(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    tenant = model_tenant
    async with tenant_scope(tenant):
        settings = await caas_layer.repo(TenantSettingsRepository).get_settings()
    assert settings.id is None and settings.version == 0
    assert settings.retention.message_retention_days is None  # keep forever
    assert settings.limits.max_file_bytes == 100 * MIB
    assert settings.features.reactions is True
    stored = raw_collection(caas_layer, tenant, TIERS[model], "tenant_settings")
    assert await stored.count_documents({"tenant_id": tenant}) == 0


@pytest.mark.parametrize("model", ["shared", "pro", "enterprise"])
async def test_partial_update_keeps_other_settings_and_lands_in_place(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    tenant = model_tenant
    async with tenant_scope(tenant):
        repo = caas_layer.repo(TenantSettingsRepository)
        first = await repo.update_section("limits", {"max_group_members": 50})
        second = await repo.update_section(
            SettingsSection.RETENTION, {"message_retention_days": 30}
        )
        third = await repo.update_section("limits", {"max_message_length": 1000})
        read = await repo.get_settings()
    assert (first.version, second.version, third.version) == (1, 2, 3)
    assert read.limits.max_group_members == 50 and read.limits.max_message_length == 1000
    assert read.limits.max_file_bytes == 100 * MIB  # untouched default
    assert read.retention.message_retention_days == 30
    stored = raw_collection(caas_layer, tenant, TIERS[model], "tenant_settings")
    docs = await stored.find({"tenant_id": tenant}).to_list(None)
    assert len(docs) == 1 and docs[0]["tenant_id"] == tenant and docs[0]["__v"] == 3
    assert docs[0]["limits"] == {"max_group_members": 50, "max_message_length": 1000}


async def test_each_tenant_has_its_own_settings(caas_layer: DataLayer, tenants: Tenants) -> None:
    for value, tenant in enumerate(tenants.all, start=10):
        async with tenant_scope(tenant):
            await caas_layer.repo(TenantSettingsRepository).update_section(
                "limits", {"max_group_members": value}
            )
    for value, tenant in enumerate(tenants.all, start=10):
        async with tenant_scope(tenant):
            settings = await caas_layer.repo(TenantSettingsRepository).get_settings()
            assert settings.limits.max_group_members == value


@pytest.mark.parametrize(
    ("section", "changes", "field", "words"),
    [
        ("limits", {"max_group_members": 1}, "limits.max_group_members", "greater than or equal"),
        ("retention", {"message_retention_days": 0}, "retention.message_retention_days", "1"),
        ("retention", {"message_retention_days": 3651}, "retention.message_retention_days", "3650"),
        ("retention", {"media_retention_days": "30"}, "retention.media_retention_days", "integer"),
        ("features", {"e2ee": "yes"}, "features.e2ee", "boolean"),
        ("limits", {"max_grup_members": 5}, "limits.max_grup_members", "unknown setting"),
        ("limits", {"max_file_bytes": True}, "limits.max_file_bytes", "integer"),
    ],
)
async def test_invalid_changes_name_the_setting_and_write_nothing(
    caas_layer: DataLayer,
    shared_tenant: str,
    section: str,
    changes: dict[str, object],
    field: str,
    words: str,
) -> None:
    async with tenant_scope(shared_tenant):
        repo = caas_layer.repo(TenantSettingsRepository)
        with pytest.raises(DocumentValidationError) as caught:
            await repo.update_section(section, changes)
        assert caught.value.fields == (field,)
        assert str(caught.value).startswith(field + ":")
        assert words in str(caught.value)
        assert await repo.count() == 0


async def test_unknown_section_and_empty_changes_are_refused(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    async with tenant_scope(pro_tenant):
        repo = caas_layer.repo(TenantSettingsRepository)
        with pytest.raises(DocumentValidationError) as caught:
            await repo.update_section("quotas", {"x": 1})
        assert caught.value.fields == ("section",) and "retention" in str(caught.value)
        with pytest.raises(DocumentValidationError):
            await repo.update_section("limits", {})
        assert await repo.count() == 0


async def test_retention_none_means_forever_and_can_be_set_back(
    caas_layer: DataLayer, enterprise_tenant: str
) -> None:
    async with tenant_scope(enterprise_tenant):
        repo = caas_layer.repo(TenantSettingsRepository)
        await repo.update_section("retention", {"media_retention_days": 90})
        settings = await repo.update_section("retention", {"media_retention_days": None})
        assert settings.retention.media_retention_days is None


@pytest.mark.parametrize("model", ["shared", "pro", "enterprise"])
async def test_expected_version_refuses_a_stale_update(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    async with tenant_scope(model_tenant):
        repo = caas_layer.repo(TenantSettingsRepository)
        read = await repo.get_settings()
        with pytest.raises(VersionConflict):  # never saved: only version 0 fits
            await repo.update_section("features", {"search": False}, expected_version=4)
        saved = await repo.update_section(
            "features", {"search": False}, expected_version=read.version
        )
        assert saved.version == 1
        with pytest.raises(VersionConflict) as caught:
            await repo.update_section("features", {"e2ee": True}, expected_version=read.version)
        assert (caught.value.expected_version, caught.value.current_version) == (0, 1)
        again = await repo.update_section("features", {"e2ee": True}, expected_version=1)
        assert (again.version, again.features.e2ee, again.features.search) == (2, True, False)


async def test_concurrent_first_saves_of_different_settings_all_land(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    async with tenant_scope(shared_tenant):
        repo = caas_layer.repo(TenantSettingsRepository)
        await asyncio.gather(
            repo.update_section("limits", {"max_group_members": 77}),
            repo.update_section("features", {"reactions": False}),
            repo.update_section("retention", {"message_retention_days": 7}),
            repo.update_section("limits", {"max_message_length": 500}),
        )
        settings = await repo.get_settings()
        assert await repo.count() == 1
    assert isinstance(settings, TenantSettings) and settings.version == 4
    assert settings.limits.max_group_members == 77 and settings.limits.max_message_length == 500
    assert settings.features.reactions is False
    assert settings.retention.message_retention_days == 7
