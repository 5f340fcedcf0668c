"""The platform, billing, analytics and security modules: exports and registered collections."""

from __future__ import annotations

import importlib

import pytest

from caas_data.documents import ALL_DOCUMENTS, analytics, billing, platform, security
from caas_data.documents.base import AppendOnlyMixin, Area, TimestampMixin, VersionMixin
from caas_data.documents.registry import spec_of

OURS = (*platform.DOCUMENTS, *billing.DOCUMENTS, *analytics.DOCUMENTS, *security.DOCUMENTS)
MODULES = [
    "caas_data.documents.platform",
    "caas_data.documents.billing",
    "caas_data.documents.analytics",
    "caas_data.documents.security",
    "caas_data.repositories.platform",
    "caas_data.repositories.platform.api_keys",
    "caas_data.repositories.billing",
    "caas_data.repositories.billing.invoices",
    "caas_data.repositories.analytics",
    "caas_data.repositories.analytics.audit",
    "caas_data.repositories.security",
    "caas_data.repositories.owned",
]


@pytest.mark.parametrize("module_name", MODULES)
def test_all_is_sorted_and_complete(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = module.__all__
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n))
    for name in exported:
        assert hasattr(module, name), f"{module_name}.{name} is in __all__ but missing"


def test_the_seed_collections_and_the_migration_ledger_are_registered_in_their_databases() -> None:
    where = {
        spec_of(d).name: spec_of(d).area
        for d in (
            *platform.DOCUMENTS,
            *billing.DOCUMENTS,
            *analytics.DOCUMENTS,
            *security.DOCUMENTS,
        )
    }
    assert where == {
        "saas_clients": Area.PLATFORM,
        "applications": Area.PLATFORM,
        "api_keys": Area.PLATFORM,
        "platform_admins": Area.PLATFORM,
        "schema_migrations": Area.PLATFORM,
        "ip_whitelist": Area.PLATFORM,
        "blocked_ips": Area.PLATFORM,
        "security_policies": Area.PLATFORM,
        "plans": Area.BILLING,
        "subscriptions": Area.BILLING,
        "invoices": Area.BILLING,
        "payment_methods": Area.BILLING,
        "usage_records": Area.BILLING,
        "events": Area.ANALYTICS,
        "metrics": Area.ANALYTICS,
        "audit_logs": Area.ANALYTICS,
        "audit_anchors": Area.ANALYTICS,
    }
    assert all(d in ALL_DOCUMENTS for d in analytics.DOCUMENTS + security.DOCUMENTS)


@pytest.mark.parametrize("document", [analytics.Event, analytics.AuditLog])
def test_events_and_audit_logs_are_append_only_without_update_fields(document: type) -> None:
    spec = spec_of(document)
    assert spec.append_only and spec.tenant_keyed and not spec.soft_delete
    assert not issubclass(document, TimestampMixin | VersionMixin)
    assert issubclass(document, AppendOnlyMixin)
    assert not {"updated_at", "version", "deleted_at"} & set(document.model_fields)


def test_everything_else_is_tenant_owned_except_the_platform_catalogues() -> None:
    untenanted = {
        spec_of(d).name
        for d in (
            *platform.DOCUMENTS,
            *billing.DOCUMENTS,
            *analytics.DOCUMENTS,
            *security.DOCUMENTS,
        )
        if not spec_of(d).tenant_keyed
    }
    assert untenanted == {"saas_clients", "platform_admins", "plans"}
