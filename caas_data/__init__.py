"""caas_data: the async, multi-tenant data-access layer of CAAS on MongoDB.

```python
layer = await caas_data.connect()            # CAAS_MONGODB_URI
await layer.tenants.provision("acme", tier=Tier.PRO)
async with caas_data.tenant_scope("acme"):
    users = layer.repo(UserRepository)
    await users.create({"external_id": "u1", "display_name": "Ada"})
```
"""

from caas_data.config import EncryptionOptions, Settings
from caas_data.documents import (
    AppendOnlyMixin,
    Area,
    BaseDocument,
    CreatedAtMixin,
    FieldEncryption,
    PlatformDocument,
    SchemaStep,
    SoftDeleteMixin,
    TenantDocument,
    TenantMixin,
    TenantOwnedDocument,
    TenantUnionDoc,
    TenantView,
    TimestampMixin,
    VersionMixin,
)
from caas_data.engine import DataLayer, UnitOfWork, connect, write_concern
from caas_data.errors import (
    AuditChainBroken,
    CaasDataError,
    ConfigurationError,
    DocumentValidationError,
    DuplicateError,
    FieldEncryptionError,
    InvalidTenantId,
    MissingDependencyError,
    NotFoundError,
    OperationRefused,
    RepositoryError,
    RetryableError,
    SchemaVersionError,
    TenancyError,
    TenantAlreadyProvisioned,
    TenantContextMissing,
    TenantIdRetained,
    TenantKeyErased,
    TenantMismatch,
    TenantNotFound,
    UnsafeOperation,
    VersionConflict,
    WriteOutcomeUnknown,
)
from caas_data.repositories import Page, Repository
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
    "AuditChainBroken",
    "BaseDocument",
    "CaasDataError",
    "ConfigurationError",
    "CreatedAtMixin",
    "DataLayer",
    "DocumentValidationError",
    "DuplicateError",
    "EncryptionOptions",
    "FieldEncryption",
    "FieldEncryptionError",
    "InvalidTenantId",
    "IsolationModel",
    "MissingDependencyError",
    "NotFoundError",
    "OperationRefused",
    "Page",
    "Placement",
    "PlatformDocument",
    "Repository",
    "RepositoryError",
    "RetryableError",
    "SchemaStep",
    "SchemaVersionError",
    "Scope",
    "Settings",
    "SoftDeleteMixin",
    "TenancyError",
    "TenantAlreadyProvisioned",
    "TenantContextMissing",
    "TenantDocument",
    "TenantIdRetained",
    "TenantKeyErased",
    "TenantMismatch",
    "TenantMixin",
    "TenantNotFound",
    "TenantOwnedDocument",
    "TenantUnionDoc",
    "TenantView",
    "Tier",
    "TimestampMixin",
    "UnitOfWork",
    "UnsafeOperation",
    "VersionConflict",
    "VersionMixin",
    "WriteOutcomeUnknown",
    "__version__",
    "connect",
    "current_tenant_id",
    "system_scope",
    "tenant_scope",
    "write_concern",
]
