"""Tenant settings (seed: saas/settings): one document per tenant, in typed sections.

A tenant that never saved settings has none stored: readers get the defaults below, so a
new default reaches every such tenant without a migration. Sections refuse unknown names
and values of the wrong type (`strict`), so a typo in an admin console is an error, not a
silently ignored key.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field
from pymongo import ASCENDING, IndexModel

from caas_data.documents.base import TenantDocument

__all__ = [
    "DOCUMENTS",
    "MAX_RETENTION_DAYS",
    "MIB",
    "FeatureSettings",
    "LimitSettings",
    "RetentionSettings",
    "SettingsSection",
    "TenantSettings",
]

MIB: Final = 1024 * 1024
MAX_RETENTION_DAYS: Final = 3650  # ten years: longer is "forever", which None says


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


class RetentionSettings(_Section):
    """How long content is kept; None keeps it forever."""

    message_retention_days: int | None = Field(default=None, ge=1, le=MAX_RETENTION_DAYS)
    media_retention_days: int | None = Field(default=None, ge=1, le=MAX_RETENTION_DAYS)
    deleted_content_retention_days: int = Field(
        default=30,
        ge=1,
        le=MAX_RETENTION_DAYS,
        description="How long soft-deleted groups, posts and files can still be restored.",
    )


class LimitSettings(_Section):
    """Per-tenant ceilings (files and groups: enforced by their repositories)."""

    max_file_bytes: int = Field(default=100 * MIB, ge=1, le=10 * 1024 * MIB)
    max_group_members: int = Field(default=1024, ge=2, le=200_000)
    max_message_length: int = Field(default=4096, ge=1, le=65_536)
    max_attachments_per_message: int = Field(default=10, ge=0, le=100)


class FeatureSettings(_Section):
    """Switches for optional features (the app reads them; defaults suit a typical chat)."""

    reactions: bool = True
    read_receipts: bool = True
    typing_indicators: bool = True
    message_editing: bool = True
    search: bool = True
    e2ee: bool = False
    posts: bool = True


class SettingsSection(StrEnum):
    """The sections of `TenantSettings`, as `update_section` names them."""

    RETENTION = "retention"
    LIMITS = "limits"
    FEATURES = "features"


class TenantSettings(TenantDocument):
    """The one settings document of a tenant."""

    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)

    class Settings:
        name = "tenant_settings"
        indexes = [
            # One document per tenant; also the key of the upsert that saves it.
            IndexModel([("tenant_id", ASCENDING)], unique=True, name="tenant_unique"),
        ]


DOCUMENTS: tuple[type[TenantDocument], ...] = (TenantSettings,)
