"""Which document classes the layer knows, and what the guard enforces on each.

The registry is also the list of names a pipeline may join: a `$lookup` naming a collection
that is not registered in the same area is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from caas_data.documents.base import (
    AppendOnlyMixin,
    Area,
    BaseDocument,
    SoftDeleteMixin,
    TenantAccess,
    TenantMixin,
    TimestampMixin,
    VersionMixin,
)
from caas_data.errors import ConfigurationError

__all__ = ["CollectionSpec", "DocumentRegistry", "spec_of"]


@dataclass(frozen=True, slots=True)
class CollectionSpec:
    """The facts about one document class that routing and the guard need."""

    name: str
    area: Area
    tenant_keyed: bool
    versioned: bool
    timestamps: bool
    soft_delete: bool
    append_only: bool = False
    tenant_access: TenantAccess = TenantAccess.NONE
    # stored name -> the value a new document carries
    protected: Mapping[str, Any] = field(default_factory=dict)
    writable_when: Mapping[str, Any] = field(default_factory=dict)


_SPECS: dict[type[BaseDocument], CollectionSpec] = {}


def spec_of(document_type: type[BaseDocument]) -> CollectionSpec:
    """Read a document class once: its collection name and which mixins it carries."""
    spec = _SPECS.get(document_type)
    if spec is None:
        spec = _SPECS[document_type] = _read_spec(document_type)
    return spec


def _read_spec(document_type: type[BaseDocument]) -> CollectionSpec:
    settings = getattr(document_type, "Settings", None)
    name = getattr(settings, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigurationError(
            f"{document_type.__name__} needs `class Settings: name = ...`",
            document_type=document_type,
        )
    if getattr(settings, "use_cache", False):
        # Beanie's cache is keyed by query, not by tenant: one tenant would read another's rows.
        raise ConfigurationError(
            f"{document_type.__name__}: `Settings.use_cache` is not supported (Beanie's cache "
            "is shared between tenants)",
            document_type=document_type,
        )
    versions = [step.version for step in document_type.caas_schema_steps]
    if versions != list(range(2, 2 + len(versions))):
        raise ConfigurationError(
            f"{document_type.__name__}: `caas_schema_steps` must lead to versions 2, 3, ... in "
            f"order, not {versions}",
            document_type=document_type,
        )
    return CollectionSpec(
        name=name,
        area=document_type.caas_area,
        tenant_keyed=issubclass(document_type, TenantMixin),
        versioned=issubclass(document_type, VersionMixin),
        timestamps=issubclass(document_type, TimestampMixin),
        soft_delete=issubclass(document_type, SoftDeleteMixin),
        append_only=issubclass(document_type, AppendOnlyMixin),
        tenant_access=document_type.caas_tenant_access,
        protected=_protected_defaults(document_type),
        writable_when=dict(document_type.caas_writable_when),
    )


def _protected_defaults(document_type: type[BaseDocument]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name in document_type.caas_protected_fields:
        info = document_type.model_fields.get(name)
        if info is None or info.is_required() or info.default_factory is not None:
            raise ConfigurationError(
                f"protected field {name!r} needs a plain default (what a new document carries)",
                document_type=document_type,
            )
        result[info.alias or name] = info.default
    return result


class DocumentRegistry:
    """The document classes of one layer, by area and collection name."""

    def __init__(self, documents: Iterable[type[BaseDocument]] = ()) -> None:
        self._by_key: dict[tuple[Area, str], type[BaseDocument]] = {}
        for document_type in documents:
            self.register(document_type)

    def register(self, document_type: type[BaseDocument]) -> None:
        """Add a class; two classes may not share a collection."""
        spec = spec_of(document_type)
        if spec.area is Area.TENANT and not spec.tenant_keyed:
            raise ConfigurationError(
                "tenant-area documents must carry tenant_id", document_type=document_type
            )
        key = (spec.area, spec.name)
        known = self._by_key.get(key)
        if known is not None and known is not document_type:
            raise ConfigurationError(
                f"{document_type.__name__} and {known.__name__} both claim {spec.area}.{spec.name}"
            )
        self._by_key[key] = document_type

    def get(self, area: Area, name: str) -> type[BaseDocument] | None:
        """The class stored in `name` within `area`, if registered."""
        return self._by_key.get((area, name))

    def in_area(self, area: Area) -> list[type[BaseDocument]]:
        """Every class of one area, in registration order."""
        return [cls for (a, _), cls in self._by_key.items() if a is area]

    def all(self) -> list[type[BaseDocument]]:
        """Every registered class."""
        return list(self._by_key.values())

    def __contains__(self, document_type: object) -> bool:
        return document_type in self._by_key.values()
