"""Namespace budgets: how many collections plus indexes each cluster holds, and where to place.

Counted from the directory and the registry (not by listing every database): a Pro or
Enterprise tenant costs its collections plus their indexes (the `_id` index included); the
home cluster also pays once for the platform, billing, analytics and shared collections.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from caas_data.documents.base import Area
from caas_data.documents.indexes import declared_indexes
from caas_data.documents.platform import RETIRED_CLIENT_STATUSES, SaasClient
from caas_data.driver_errors import translate_driver_errors
from caas_data.engine.clusters import HOME_CLUSTER, ClusterUsage
from caas_data.tenancy.tiers import IsolationModel, Tier

if TYPE_CHECKING:
    from caas_data.layer import DataLayer

__all__ = ["choose_cluster", "cluster_report", "namespace_cost"]


def namespace_cost(layer: DataLayer, areas: tuple[Area, ...] = (Area.TENANT,)) -> int:
    """Collections plus indexes (with `_id`) of the document classes of `areas`."""
    return sum(
        2 + len(declared_indexes(document_type))
        for area in areas
        for document_type in layer.registry.in_area(area)
    )


async def cluster_report(layer: DataLayer) -> list[ClusterUsage]:
    """Per connected cluster: namespaces used, the budget and the tenants placed there.

    Shared tenants live in the home cluster's shared collections and cost nothing each.
    """
    per_tenant = namespace_cost(layer)
    fixed = namespace_cost(layer, (Area.PLATFORM, Area.BILLING, Area.ANALYTICS, Area.TENANT))
    used: dict[str, int] = defaultdict(int)
    tenants: dict[str, list[str]] = defaultdict(list)
    used[HOME_CLUSTER] = fixed
    directory = layer.unguarded_platform_collection(
        SaasClient, why="capacity planning counts every live tenant's placement"
    )
    live = {"status": {"$nin": sorted(RETIRED_CLIENT_STATUSES)}}
    with translate_driver_errors(document_type=SaasClient):
        async for raw in directory.find(live, {"tenant_id": 1, "tier": 1, "placement": 1}):
            cluster = raw.get("placement", {}).get("cluster", HOME_CLUSTER)
            tenants[cluster].append(raw["tenant_id"])
            if Tier(raw["tier"]).isolation is not IsolationModel.SHARED:
                used[cluster] += per_tenant
    return [
        ClusterUsage(name, used[name], layer.clusters.budget(name), tuple(sorted(tenants[name])))
        for name in layer.clusters.names
    ]


async def choose_cluster(layer: DataLayer, tenant_id: str, tier: Tier) -> str:
    """Where a new tenant of `tier` goes: home for shared tiers, else the roomiest cluster.

    Raises:
        CapacityExhausted: no cluster has room for the tenant's collections and indexes.
    """
    if tier.isolation is IsolationModel.SHARED:
        return HOME_CLUSTER
    report = await cluster_report(layer)
    return layer.clusters.choose(report, namespace_cost(layer), tenant_id=tenant_id)
