"""Repositories of per-tenant data (seed: saas/)."""

from caas_data.repositories.saas.users import (
    UserDeviceRepository,
    UserRelationshipRepository,
    UserRepository,
    UserSessionRepository,
)

__all__ = [
    "UserDeviceRepository",
    "UserRelationshipRepository",
    "UserRepository",
    "UserSessionRepository",
]
