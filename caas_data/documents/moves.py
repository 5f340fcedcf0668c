"""`tenant_moves` (`{prefix}_platform`): the progress of a tenant move, for crash-safe resumes.

One document per tenant while its move runs (unique `tenant_id`); deleted when the move has
finished, whose history is the `tenant.moved` entry of the tenant's audit chain. Platform
data: not readable from a tenant scope.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from pymongo import ASCENDING, IndexModel

from caas_data.documents.base import PlatformDocument
from caas_data.documents.platform import PlacementRecord
from caas_data.tenancy.tiers import Tier

__all__ = ["DOCUMENTS", "CollectionProgress", "MoveStep", "TenantMove"]


class MoveStep(StrEnum):
    """Where a move stands; each step is recorded before its effects start."""

    COPYING = "copying"  # copy in batches, then catch up from the change streams
    FENCED = "fenced"  # old placement refuses the tenant's writes; final drain, verify, switch
    SWITCHED = "switched"  # the directory points at the new placement
    CLEANING = "cleaning"  # the old copy is being removed


class CollectionProgress(BaseModel):
    """One collection's copy position (the catch-up position is the move's: one stream)."""

    copy_until: Any = None  # the last `_id` when the stream opened; later ones come from it
    last_id: Any = None
    copied: int = 0
    copy_done: bool = False


class TenantMove(PlatformDocument):
    """A move in progress: from where, to where, how far."""

    tenant_id: str
    from_tier: Tier
    to_tier: Tier
    source: PlacementRecord
    target: PlacementRecord
    step: MoveStep = MoveStep.COPYING
    collections: dict[str, CollectionProgress] = Field(default_factory=dict)
    # One change stream on the source database: where it starts (the source's operation
    # time before the first document was copied, a Timestamp), then the last applied
    # event's own resume token.
    start_at: Any = None
    resume_token: dict[str, Any] | None = None
    caught_up: int = 0
    fence_seconds: float = 0.0
    switched_at: datetime | None = None
    actor: str | None = None

    class Settings:
        name = "tenant_moves"
        indexes = [IndexModel([("tenant_id", ASCENDING)], unique=True, name="tenant_id_unique")]


DOCUMENTS = (TenantMove,)
