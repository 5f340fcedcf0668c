"""Per-tenant data (seed: saas/)."""

from caas_data.documents.base import BaseDocument
from caas_data.documents.saas import encryption, groups, media, messaging, settings, users
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

# Every per-tenant document class, area by area (the order of the seed's table).
DOCUMENTS: tuple[type[BaseDocument], ...] = (
    *users.DOCUMENTS,
    *messaging.DOCUMENTS,
    *media.DOCUMENTS,
    *groups.DOCUMENTS,
    *encryption.DOCUMENTS,
    *settings.DOCUMENTS,
)

__all__ = [
    "DOCUMENTS",
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
