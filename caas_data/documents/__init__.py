"""Document declarations, one module per schema area of the seed."""

from caas_data.documents import analytics, billing, counters, moves, platform, saas, security
from caas_data.documents.base import (
    AppendOnlyMixin,
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

# Every document class that ships with caas_data; connect() registers them all.
ALL_DOCUMENTS: tuple[type[BaseDocument], ...] = (
    *platform.DOCUMENTS,
    *saas.DOCUMENTS,
    *billing.DOCUMENTS,
    *analytics.DOCUMENTS,
    *security.DOCUMENTS,
    *counters.DOCUMENTS,
    *moves.DOCUMENTS,
)

__all__ = [
    "ALL_DOCUMENTS",
    "AppendOnlyMixin",
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
