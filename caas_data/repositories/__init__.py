"""Repositories: typed, tenant-scoped data access, one module per schema area."""

from caas_data.repositories.base import Page, Repository, SortSpec
from caas_data.repositories.saas import (
    UserDeviceRepository,
    UserRelationshipRepository,
    UserRepository,
    UserSessionRepository,
)

__all__ = [
    "Page",
    "Repository",
    "SortSpec",
    "UserDeviceRepository",
    "UserRelationshipRepository",
    "UserRepository",
    "UserSessionRepository",
]
