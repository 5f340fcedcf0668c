"""caas_data: the async, multi-tenant data-access layer of CAAS on MongoDB.

```python
layer = await caas_data.connect()            # CAAS_MONGODB_URI
await layer.tenants.provision("acme", tier=Tier.PRO)
async with caas_data.tenant_scope("acme"):
    users = layer.repo(UserRepository)
    await users.create({"external_id": "u1", "display_name": "Ada"})
```
"""

from caas_data.config import Settings
from caas_data.documents import (
    AppendOnlyMixin,
    Area,
    BaseDocument,
    ClientStatus,
    CreatedAtMixin,
    PlatformDocument,
    SaasClient,
    SoftDeleteMixin,
    TenantDocument,
    TenantMixin,
    TenantOwnedDocument,
    TimestampMixin,
    VersionMixin,
)
from caas_data.documents.saas import (
    DevicePlatform,
    Presence,
    PushProvider,
    RelationshipKind,
    User,
    UserDevice,
    UserRelationship,
    UserSession,
    UserStatus,
)
from caas_data.engine import DataLayer, GuardedCollection, UnitOfWork, connect
from caas_data.errors import (
    CaasDataError,
    ConfigurationError,
    DocumentValidationError,
    DuplicateError,
    InvalidTenantId,
    NotFoundError,
    RepositoryError,
    RetryableError,
    TenancyError,
    TenantAlreadyProvisioned,
    TenantContextMissing,
    TenantMismatch,
    TenantNotFound,
    UnsafeOperation,
    VersionConflict,
)
from caas_data.repositories import (
    Page,
    Repository,
    UserDeviceRepository,
    UserRelationshipRepository,
    UserRepository,
    UserSessionRepository,
)
from caas_data.tenancy import (
    IsolationModel,
    Placement,
    Scope,
    Tier,
    current_tenant_id,
    system_scope,
    tenant_scope,
)

__version__ = "0.1.0"

__all__ = [
    "AppendOnlyMixin",
    "Area",
    "BaseDocument",
    "CaasDataError",
    "ClientStatus",
    "ConfigurationError",
    "CreatedAtMixin",
    "DataLayer",
    "DevicePlatform",
    "DocumentValidationError",
    "DuplicateError",
    "GuardedCollection",
    "InvalidTenantId",
    "IsolationModel",
    "NotFoundError",
    "Page",
    "Placement",
    "PlatformDocument",
    "Presence",
    "PushProvider",
    "RelationshipKind",
    "Repository",
    "RepositoryError",
    "RetryableError",
    "SaasClient",
    "Scope",
    "Settings",
    "SoftDeleteMixin",
    "TenancyError",
    "TenantAlreadyProvisioned",
    "TenantContextMissing",
    "TenantDocument",
    "TenantMismatch",
    "TenantMixin",
    "TenantNotFound",
    "TenantOwnedDocument",
    "Tier",
    "TimestampMixin",
    "UnitOfWork",
    "UnsafeOperation",
    "User",
    "UserDevice",
    "UserDeviceRepository",
    "UserRelationship",
    "UserRelationshipRepository",
    "UserRepository",
    "UserSession",
    "UserSessionRepository",
    "UserStatus",
    "VersionConflict",
    "VersionMixin",
    "__version__",
    "connect",
    "current_tenant_id",
    "system_scope",
    "tenant_scope",
]
