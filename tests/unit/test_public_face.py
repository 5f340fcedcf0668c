"""The public face (issue 12.11): a small top level, one package per schema area of the seed.

`__all__` is checked both ways: every name in it resolves, and every public name a package
defines or imports is in it (modules aside). Each area package covers its seed collections.
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType

import pytest

import caas_data
from caas_data.documents import ALL_DOCUMENTS, BaseDocument
from caas_data.repositories import Repository

TOP_LEVEL_LIMIT = 60

# The collections of each schema area, as the seed's caas-schema-index.md lists them.
SEED_AREAS: dict[str, set[str]] = {
    "platform": {"saas_clients", "applications", "api_keys", "platform_admins"},
    "saas": {
        "users", "user_devices", "user_sessions", "user_relationships",
        "conversations", "messages", "reactions", "read_receipts",
        "files", "posts", "media_metadata",
        "groups", "group_members",
        "user_keys", "prekey_bundles",
        "tenant_settings",
    },
    "billing": {"subscriptions", "plans", "invoices", "usage_records", "payment_methods"},
    "analytics": {"events", "metrics", "audit_logs"},
    "security": {"ip_whitelist", "blocked_ips", "security_policies"},
}  # fmt: skip
PACKAGES = ["caas_data", *(f"caas_data.{area}" for area in SEED_AREAS)]


def public_names(module: ModuleType) -> set[str]:
    """What a user sees in the module: its public attributes that are not modules."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }


def collection(document: type[BaseDocument]) -> str:
    """The collection a document class declares (`Settings.name`)."""
    return str(document.Settings.name)


def exported_documents(module: ModuleType) -> list[type[BaseDocument]]:
    """The document classes a package exports (abstract bases and mixins aside)."""
    return [
        obj
        for obj in (getattr(module, name) for name in module.__all__)
        if inspect.isclass(obj) and issubclass(obj, BaseDocument) and obj in ALL_DOCUMENTS
    ]


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_complete_both_ways_and_sorted(package: str) -> None:
    module = importlib.import_module(package)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), "a name is listed twice"
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n)) or exported == sorted(
        exported
    )
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == [], f"{package}.__all__ names what the package does not have"
    unlisted = public_names(module) - set(exported) - {"annotations"}
    assert unlisted == set(), f"{package} has public names outside __all__"


def test_the_top_level_keeps_to_what_most_code_needs() -> None:
    names = set(caas_data.__all__)
    assert len(names) <= TOP_LEVEL_LIMIT, f"{len(names)} names at the top level"
    for needed in ("connect", "DataLayer", "tenant_scope", "system_scope", "Tier", "Repository",
                   "Page", "BaseDocument", "TenantDocument", "SoftDeleteMixin", "CaasDataError",
                   "NotFoundError", "VersionConflict"):  # fmt: skip
        assert needed in names, needed
    assert not any(name.endswith("Repository") and name != "Repository" for name in names)


def test_the_whole_error_tree_is_at_the_top_level() -> None:
    from caas_data import errors

    tree = {
        name
        for name in errors.__all__
        if inspect.isclass(getattr(errors, name))
        and issubclass(getattr(errors, name), caas_data.CaasDataError)
    }
    assert tree - set(caas_data.__all__) == set()


@pytest.mark.parametrize("area", sorted(SEED_AREAS))
def test_each_area_package_covers_its_seed_collections(area: str) -> None:
    module = importlib.import_module(f"caas_data.{area}")
    collections = {collection(d) for d in exported_documents(module)}
    assert SEED_AREAS[area] <= collections, SEED_AREAS[area] - collections
    for document in exported_documents(module):
        if collection(document) not in SEED_AREAS[area]:
            continue  # e.g. AuditAnchor: kept by AuditLogRepository
        repositories = [
            obj
            for obj in (getattr(module, name) for name in module.__all__)
            if inspect.isclass(obj)
            and issubclass(obj, Repository)
            and getattr(obj, "document_type", None) is document
        ]
        assert repositories, f"caas_data.{area} exports {document.__name__} but no repository"


def test_every_repository_and_seed_document_is_reachable_once() -> None:
    homes: dict[str, list[str]] = {}
    for package in PACKAGES:
        for name in importlib.import_module(package).__all__:
            homes.setdefault(name, []).append(package)
    import caas_data.repositories as repositories

    for name in repositories.__all__:
        obj = getattr(repositories, name)
        if inspect.isclass(obj) and issubclass(obj, Repository):
            assert len(homes.get(name, [])) == 1, f"{name}: {homes.get(name)}"
    seeded = set().union(*SEED_AREAS.values())
    for document in ALL_DOCUMENTS:
        if collection(document) in seeded:
            assert len(homes.get(document.__name__, [])) == 1, document.__name__


def test_a_name_that_moved_says_where_it_lives() -> None:
    with pytest.raises(AttributeError, match=r"from caas_data\.saas import UserRepository"):
        moved = "UserRepository"  # spelled as a string: the vocabulary codemod rewrites names
        getattr(caas_data, moved)
    assert caas_data.billing.PlanRepository.__name__ == "PlanRepository"
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        caas_data.NoSuchThing  # noqa: B018
