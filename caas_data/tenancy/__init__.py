"""Tenancy: ids, tiers and placement, the scope, and the guard below the declarations.

The guard's modules (rules, guarded collection, cursors, field encryption) are not
re-exported here: importing the scope must not load them.
"""

from caas_data.tenancy.context import (
    Scope,
    current_scope,
    current_tenant_id,
    system_scope,
    tenant_scope,
)
from caas_data.tenancy.ids import RESERVED_TENANT_IDS, validate_tenant_id
from caas_data.tenancy.tiers import IsolationModel, Placement, Tier

__all__ = [
    "RESERVED_TENANT_IDS",
    "IsolationModel",
    "Placement",
    "Scope",
    "Tier",
    "current_scope",
    "current_tenant_id",
    "system_scope",
    "tenant_scope",
    "validate_tenant_id",
]
