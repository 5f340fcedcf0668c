"""A document class with a schema history, for the migration tests and the CLI's `--documents`."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from caas_data import SchemaStep, TenantDocument


def split_name(raw: dict[str, Any]) -> dict[str, Any]:
    if "full_name" in raw:
        first, _, last = raw.pop("full_name").partition(" ")
        raw["first"], raw["last"] = first, last
    return raw


def join_name(raw: dict[str, Any]) -> dict[str, Any]:
    first, last = raw.pop("first", ""), raw.pop("last", "")
    raw["full_name"] = f"{first} {last}".strip()
    return raw


def add_tags(raw: dict[str, Any]) -> dict[str, Any]:
    raw.setdefault("tags", [])
    return raw


def drop_tags(raw: dict[str, Any]) -> dict[str, Any]:
    raw.pop("tags", None)
    return raw


class Note(TenantDocument):
    caas_schema_steps: ClassVar[tuple[SchemaStep, ...]] = (
        SchemaStep(2, "split_full_name", split_name, join_name),
        SchemaStep(3, "add_tags", add_tags, drop_tags),
    )

    first: str
    last: str = ""
    tags: list[str] = Field(default_factory=list)

    class Settings:
        name = "ops_notes"
        indexes = [[("tenant_id", 1), ("first", 1)]]


DOCUMENTS = [Note]
