"""Tenancy: ids, tiers and placement, the scope, the resolver and provisioning."""

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
