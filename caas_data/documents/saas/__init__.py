"""Per-tenant data (seed: saas/)."""

from caas_data.documents.saas.users import (
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

__all__ = [
    "DevicePlatform",
    "Presence",
    "PushProvider",
    "RelationshipKind",
    "User",
    "UserDevice",
    "UserRelationship",
    "UserSession",
    "UserStatus",
]
