"""Named counters: atomic, gap-free sequence numbers (message seqs, invoice numbers...)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pymongo import ASCENDING, IndexModel

from caas_data.documents.base import Area, TenantDocument, TenantOwnedDocument

__all__ = ["DOCUMENTS", "Counter", "OwnedCounter"]


class Counter(TenantDocument):
    """A tenant's counter, stored with its other data (same placement, same transactions)."""

    # Only the counter repository moves a counter: a value set by hand would skip or reuse
    # sequence numbers.
    caas_protected_fields: ClassVar[frozenset[str]] = frozenset({"value"})

    key: str = Field(min_length=1, max_length=200)
    value: int = Field(default=0, ge=0)

    class Settings:
        name = "counters"
        indexes = [IndexModel([("tenant_id", ASCENDING), ("key", ASCENDING)], unique=True)]


class OwnedCounter(TenantOwnedDocument):
    """A tenant's counter kept in the platform database (invoice numbers, audit sequence)."""

    caas_area: ClassVar[Area] = Area.PLATFORM
    caas_protected_fields: ClassVar[frozenset[str]] = frozenset({"value"})

    key: str = Field(min_length=1, max_length=200)
    value: int = Field(default=0, ge=0)

    class Settings:
        name = "tenant_counters"
        indexes = [IndexModel([("tenant_id", ASCENDING), ("key", ASCENDING)], unique=True)]


DOCUMENTS = (Counter, OwnedCounter)
