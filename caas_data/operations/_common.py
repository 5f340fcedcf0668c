"""What every operator operation needs: the directory's live tenants and the outside check."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from caas_data.documents.base import Area, BaseDocument
from caas_data.documents.platform import RETIRED_CLIENT_STATUSES, SaasClient
from caas_data.documents.registry import spec_of
from caas_data.driver_errors import translate_driver_errors
from caas_data.services.provisioning import require_operator_scope
from caas_data.tenancy.tiers import Placement

if TYPE_CHECKING:
    from caas_data.layer import DataLayer

__all__ = [
    "OUTSIDE_AREAS",
    "live_clients",
    "placement_of",
    "pseudonym",
    "require_operator_scope",
    "tenant_classes",
    "tenant_owned_classes",
]

OUTSIDE_AREAS = (Area.PLATFORM, Area.BILLING, Area.ANALYTICS)
"""The areas whose collections hold rows of every tenant (filtered by `tenant_id`)."""


async def live_clients(layer: DataLayer) -> list[SaasClient]:
    """Every live directory entry (tombstones left out), by tenant id."""
    directory = layer.unguarded_platform_collection(
        SaasClient, why="the operator walks the directory, outside tenant scopes"
    )
    with translate_driver_errors(document_type=SaasClient):
        cursor = directory.find(
            {"status": {"$nin": sorted(RETIRED_CLIENT_STATUSES)}}, sort=[("tenant_id", 1)]
        )
        return [SaasClient.model_validate(raw) async for raw in cursor]


def placement_of(client: SaasClient) -> Placement:
    """The placement a directory entry records."""
    return Placement(
        client.tenant_id, client.tier, client.placement.database, client.placement.collection_prefix
    )


def tenant_classes(layer: DataLayer) -> list[type[BaseDocument]]:
    """The registered tenant-area classes (what a placement holds)."""
    return layer.registry.in_area(Area.TENANT)


def tenant_owned_classes(layer: DataLayer) -> Iterator[type[BaseDocument]]:
    """The registered classes of the outside areas whose rows carry a `tenant_id`."""
    for area in OUTSIDE_AREAS:
        for document_type in layer.registry.in_area(area):
            if spec_of(document_type).tenant_keyed:
                yield document_type


def pseudonym(layer: DataLayer, tenant_id: str) -> str:
    """A stable stand-in for an erased id: names it in records without containing it."""
    digest = hashlib.sha256(f"{layer.prefix}:{tenant_id}".encode()).hexdigest()
    return f"erased-{digest[:16]}"
