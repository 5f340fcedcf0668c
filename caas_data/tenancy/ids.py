"""Tenant id syntax: checked before any I/O, so a bad id never reaches a database name."""

from __future__ import annotations

import re

from caas_data.errors import InvalidTenantId

__all__ = ["RESERVED_TENANT_IDS", "TENANT_ID_PATTERN", "validate_tenant_id"]

# No "_": "{tenant}_{collection}" must split in exactly one way.
TENANT_ID_PATTERN = re.compile(r"^[a-z][a-z0-9-]{2,31}$")

# These are database suffixes of the platform itself ({prefix}_platform, ...).
RESERVED_TENANT_IDS = frozenset({"platform", "billing", "analytics", "shared", "security"})


# Ids already found valid: every scope entry checks its id, and most ids come back often.
_known_valid: set[str] = set()
_KNOWN_VALID_MAX = 10_000


def validate_tenant_id(tenant_id: object) -> str:
    """Return the id when it is a valid, unreserved tenant id; raise `InvalidTenantId` if not."""
    if type(tenant_id) is str and tenant_id in _known_valid:
        return tenant_id
    if not isinstance(tenant_id, str):
        raise InvalidTenantId(f"tenant id must be a string, got {type(tenant_id).__name__}")
    if not TENANT_ID_PATTERN.fullmatch(tenant_id):
        raise InvalidTenantId(
            f"invalid tenant id {tenant_id!r}: expected 3-32 characters, a lowercase letter "
            "first, then lowercase letters, digits or '-'"
        )
    if tenant_id in RESERVED_TENANT_IDS:
        raise InvalidTenantId(f"tenant id {tenant_id!r} is reserved")
    if type(tenant_id) is str:  # a str subclass could hash or compare differently
        if len(_known_valid) >= _KNOWN_VALID_MAX:
            _known_valid.clear()
        _known_valid.add(tenant_id)
    return tenant_id
