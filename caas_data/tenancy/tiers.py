"""Tiers, the isolation model each one gets, and where a tenant's collections live."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from caas_data.engine.clusters import HOME_CLUSTER

__all__ = ["HOME_CLUSTER", "IsolationModel", "Placement", "Tier"]


class Tier(StrEnum):
    """The commercial tier of a tenant; it decides the isolation model."""

    FREE = "free"
    STARTER = "starter"
    PRO = "pro"
    ENTERPRISE = "enterprise"

    @property
    def isolation(self) -> IsolationModel:
        """The isolation model this tier is placed in."""
        if self is Tier.ENTERPRISE:
            return IsolationModel.DATABASE
        if self is Tier.PRO:
            return IsolationModel.COLLECTION_SET
        return IsolationModel.SHARED


class IsolationModel(StrEnum):
    """How a tenant's data is separated from other tenants' data."""

    SHARED = "shared"  # shared collections in {prefix}_shared, filtered by tenant_id
    COLLECTION_SET = "collection_set"  # {tenant}_{collection} in {prefix}_shared
    DATABASE = "database"  # its own database {prefix}_{tenant}


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one tenant's data lives; the resolver hands these out, routing reads them."""

    tenant_id: str
    tier: Tier
    database: str
    collection_prefix: str = ""
    cluster: str = HOME_CLUSTER

    @classmethod
    def for_tier(
        cls, tenant_id: str, tier: Tier, *, database_prefix: str, cluster: str = HOME_CLUSTER
    ) -> Placement:
        """The placement a tier gets under the naming convention of the schema index.

        Shared collections live on the home cluster only; the other models go to `cluster`.
        """
        model = tier.isolation
        if model is IsolationModel.DATABASE:
            return cls(tenant_id, tier, f"{database_prefix}_{tenant_id}", "", cluster)
        if model is IsolationModel.SHARED:
            return cls(tenant_id, tier, f"{database_prefix}_shared", "", HOME_CLUSTER)
        return cls(tenant_id, tier, f"{database_prefix}_shared", f"{tenant_id}_", cluster)

    @property
    def isolation(self) -> IsolationModel:
        """The isolation model of this placement."""
        return self.tier.isolation

    def collection_name(self, logical_name: str) -> str:
        """The physical collection name of a logical one (`messages` -> `acme_messages`)."""
        return f"{self.collection_prefix}{logical_name}"
