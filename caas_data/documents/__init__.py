"""Document declarations, one module per schema area of the seed."""

from caas_data.documents import analytics, billing, counters, moves, platform, saas, security
from caas_data.documents.base import (
    AppendOnlyMixin,
    Area,
    BaseDocument,
    CreatedAtMixin,
    PlatformDocument,
    SchemaStep,
    SoftDeleteMixin,
    TenantDocument,
    TenantMixin,
    TenantOwnedDocument,
    TimestampMixin,
    VersionMixin,
    install_storage,
)
from caas_data.documents.platform import ClientStatus, PlacementRecord, SaasClient
from caas_data.documents.storage import STORAGE
from caas_data.documents.union import TenantUnionDoc
from caas_data.documents.views import TenantView
from caas_data.tenancy.field_encryption import FieldEncryption

install_storage(STORAGE)  # the declarations' routing and writes (see DocumentStorage)
# Beanie's find queries on the layer's documents: projection and filter built without waste.
import caas_data.documents.queries  # noqa: E402, F401

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
    "FieldEncryption",
    "PlacementRecord",
    "PlatformDocument",
    "SaasClient",
    "SchemaStep",
    "SoftDeleteMixin",
    "TenantDocument",
    "TenantMixin",
    "TenantOwnedDocument",
    "TenantUnionDoc",
    "TenantView",
    "TimestampMixin",
    "VersionMixin",
]
