"""caas_data: the async, multi-tenant data-access layer of CAAS on MongoDB.

```python
from caas_data.saas import UserRepository

layer = await caas_data.connect()            # CAAS_MONGODB_URI
await layer.tenants.provision("acme", tier=Tier.PRO)
async with caas_data.tenant_scope("acme"):
    users = layer.repo(UserRepository)
    await users.create({"external_id": "u1", "display_name": "Ada"})
```

The top level holds what most code needs; each schema area of the seed is a package:
`caas_data.platform`, `caas_data.saas`, `caas_data.billing`, `caas_data.analytics`,
`caas_data.security` (its documents and repositories).
"""

import importlib as _importlib
from types import ModuleType as _ModuleType

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
from caas_data.engine.sessions import write_concern
from caas_data.errors import (
    AuditChainBroken,
    BulkDuplicateError,
    CaasDataError,
    CapacityExhausted,
    ConfigurationError,
    DocumentValidationError,
    DuplicateError,
    FieldEncryptionError,
    InvalidTenantId,
    MissingDependencyError,
    MoveVerificationFailed,
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
    TenantMoving,
    TenantNotFound,
    UnsafeOperation,
    VersionConflict,
    WriteOutcomeUnknown,
)
from caas_data.layer import DataLayer, UnitOfWork, connect
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
    "BulkDuplicateError",
    "CaasDataError",
    "CapacityExhausted",
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
    "MoveVerificationFailed",
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
    "TenantMoving",
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


_AREAS = ("analytics", "billing", "platform", "saas", "security")


def __getattr__(name: str) -> _ModuleType:
    """`caas_data.saas` and the other area packages, imported on first use.

    A name that lives in an area gets an error saying which (there is no alias at the top).
    """
    if name in _AREAS:
        return _importlib.import_module(f"caas_data.{name}")
    if not name.startswith("_"):
        for area in _AREAS:
            if name in _importlib.import_module(f"caas_data.{area}").__all__:
                raise AttributeError(
                    f"caas_data.{name} lives in its area package: "
                    f"from caas_data.{area} import {name}"
                )
    raise AttributeError(f"module 'caas_data' has no attribute {name!r}")
