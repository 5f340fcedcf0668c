"""Document declarations, one module per schema area of the seed."""

from caas_data.documents.base import (
    Area,
    BaseDocument,
    CreatedAtMixin,
    PlatformDocument,
    SoftDeleteMixin,
    TenantDocument,
    TenantMixin,
    TenantOwnedDocument,
    TimestampMixin,
    VersionMixin,
)
from caas_data.documents.platform import ClientStatus, PlacementRecord, SaasClient
from caas_data.documents.saas import User, UserDevice, UserRelationship, UserSession

ALL_DOCUMENTS: tuple[type[BaseDocument], ...] = (
    SaasClient,
    User,
    UserDevice,
    UserSession,
    UserRelationship,
)

__all__ = [
    "ALL_DOCUMENTS",
    "Area",
    "BaseDocument",
    "ClientStatus",
    "CreatedAtMixin",
    "PlacementRecord",
    "PlatformDocument",
    "SaasClient",
    "SoftDeleteMixin",
    "TenantDocument",
    "TenantMixin",
    "TenantOwnedDocument",
    "TimestampMixin",
    "VersionMixin",
]
