"""Platform collections (`{prefix}_platform`): CAAS's own operations, not tenant data."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pymongo import ASCENDING, IndexModel

from caas_data.documents.base import PlatformDocument
from caas_data.tenancy.tiers import Tier

__all__ = ["DOCUMENTS", "ClientStatus", "PlacementRecord", "SaasClient"]


class ClientStatus(StrEnum):
    """Whether a tenant may use the platform."""

    ACTIVE = "active"
    SUSPENDED = "suspended"


class PlacementRecord(BaseModel):
    """Where a tenant's data lives, as recorded in the directory."""

    model_config = ConfigDict(frozen=True)

    database: str
    collection_prefix: str = ""


class SaasClient(PlatformDocument):
    """A registered SaaS company: the tenant directory the resolver reads."""

    tenant_id: str = Field(description="The tenant id every tenant row carries.")
    name: str = Field(min_length=1, max_length=200)
    tier: Tier
    status: ClientStatus = ClientStatus.ACTIVE
    placement: PlacementRecord
    pending_tier: Tier | None = Field(
        default=None, description="A tier change recorded but not yet carried out."
    )

    class Settings:
        name = "saas_clients"
        indexes = [IndexModel([("tenant_id", ASCENDING)], unique=True, name="tenant_id_unique")]


DOCUMENTS: tuple[type[PlatformDocument], ...] = (SaasClient,)
