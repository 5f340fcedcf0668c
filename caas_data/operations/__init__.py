"""Operating the platform: migrations, index sync, export/import, erasure, doctor.

Every function here is an operator operation: it takes the `DataLayer`, runs outside any
tenant scope (inside one it raises `TenantMismatch` before any I/O) and reaches tenant data
only through the tenant guard in that tenant's scope, or through the named escape hatch for
what the guard cannot express (DDL, the directory, the migration ledger, erasure).
"""

from caas_data.operations.doctor import NAMESPACE_BUDGET, DoctorReport, doctor
from caas_data.operations.erasure import (
    DELETED_USER_ID,
    TenantErasure,
    UserErasure,
    erase_tenant,
    erase_user,
    export_user,
)
from caas_data.operations.indexes import IndexReport, sync_indexes
from caas_data.operations.migrations import (
    MigrationReport,
    PlannedStep,
    TenantMigration,
    migrate,
    plan_steps,
)
from caas_data.operations.transfer import (
    EXPORT_FORMAT,
    ExportResult,
    ImportResult,
    export_tenant,
    exported_classes,
    import_tenant,
)

__all__ = [
    "DELETED_USER_ID",
    "EXPORT_FORMAT",
    "NAMESPACE_BUDGET",
    "DoctorReport",
    "ExportResult",
    "ImportResult",
    "IndexReport",
    "MigrationReport",
    "PlannedStep",
    "TenantErasure",
    "TenantMigration",
    "UserErasure",
    "doctor",
    "erase_tenant",
    "erase_user",
    "export_tenant",
    "export_user",
    "exported_classes",
    "import_tenant",
    "migrate",
    "plan_steps",
    "sync_indexes",
]
