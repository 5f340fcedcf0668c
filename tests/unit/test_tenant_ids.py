import pytest

from caas_data import InvalidTenantId, Placement, Tier
from caas_data.tenancy import RESERVED_TENANT_IDS, IsolationModel, validate_tenant_id


@pytest.mark.parametrize("tenant_id", ["acme", "a-1", "abc", "a" * 32, "x0-0-0"])
def test_valid_ids_pass(tenant_id: str) -> None:
    assert validate_tenant_id(tenant_id) == tenant_id


@pytest.mark.parametrize(
    "tenant_id",
    ["", "ab", "a" * 33, "Acme", "1acme", "-acme", "ac_me", "ac me", "acme$", "acmé", "a.b.c"],
)
def test_malformed_ids_raise(tenant_id: str) -> None:
    with pytest.raises(InvalidTenantId, match="invalid tenant id"):
        validate_tenant_id(tenant_id)


@pytest.mark.parametrize("tenant_id", sorted(RESERVED_TENANT_IDS))
def test_reserved_ids_raise(tenant_id: str) -> None:
    with pytest.raises(InvalidTenantId, match="reserved"):
        validate_tenant_id(tenant_id)


def test_non_string_ids_raise_a_value_error() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        validate_tenant_id(42)


def test_tiers_map_to_isolation_models() -> None:
    assert Tier.FREE.isolation is IsolationModel.SHARED
    assert Tier.STARTER.isolation is IsolationModel.SHARED
    assert Tier.PRO.isolation is IsolationModel.COLLECTION_SET
    assert Tier.ENTERPRISE.isolation is IsolationModel.DATABASE
    assert Tier("pro") is Tier.PRO


@pytest.mark.parametrize(
    ("tier", "database", "collection"),
    [
        (Tier.FREE, "caas_shared", "messages"),
        (Tier.STARTER, "caas_shared", "messages"),
        (Tier.PRO, "caas_shared", "acme_messages"),
        (Tier.ENTERPRISE, "caas_acme", "messages"),
    ],
)
def test_placement_follows_the_naming_convention(
    tier: Tier, database: str, collection: str
) -> None:
    placement = Placement.for_tier("acme", tier, database_prefix="caas")
    assert placement.database == database
    assert placement.collection_name("messages") == collection
