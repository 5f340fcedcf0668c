"""Which document classes the layer knows, and what the guard enforces on each.

The registry is also the list of names a pipeline may join: a `$lookup` naming a collection
that is not registered in the same area is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from caas_data.documents.base import (
    AppendOnlyMixin,
    Area,
    BaseDocument,
    SoftDeleteMixin,
    TenantMixin,
    TimestampMixin,
    VersionMixin,
)
from caas_data.documents.beanie_state import collection_name, collection_root, is_abstract
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


_SPECS: dict[type[BaseDocument], CollectionSpec] = {}


def spec_of(document_type: type[BaseDocument]) -> CollectionSpec:
    """Read a document class once: its collection name and which mixins it carries."""
    spec = _SPECS.get(document_type)
    if spec is None:
        spec = _SPECS[document_type] = _read_spec(document_type)
    return spec


def _read_spec(document_type: type[BaseDocument]) -> CollectionSpec:
    if is_abstract(document_type):
        raise ConfigurationError(
            f"{document_type.__name__} is an abstract base: register its subclasses",
            document_type=document_type,
        )
    return CollectionSpec(
        name=collection_name(document_type),
        area=document_type.caas_area,
        tenant_keyed=issubclass(document_type, TenantMixin),
        versioned=issubclass(document_type, VersionMixin),
        timestamps=issubclass(document_type, TimestampMixin),
        soft_delete=issubclass(document_type, SoftDeleteMixin),
        append_only=issubclass(document_type, AppendOnlyMixin),
    )


class DocumentRegistry:
    """The document classes of one layer, by area and collection name."""

    def __init__(self, documents: Iterable[type[BaseDocument]] = ()) -> None:
        # (area, name) -> the class owning the collection (creates it and its indexes)
        self._by_key: dict[tuple[Area, str], type[BaseDocument]] = {}
        # every registered class, owners and the members sharing their collection
        self._members: dict[type[BaseDocument], None] = {}
        for document_type in documents:
            self.register(document_type)

    def register(self, document_type: type[BaseDocument]) -> None:
        """Add a class; two classes share a collection only as one Beanie hierarchy.

        An `is_root` class and its subclasses (told apart by `_class_id`) or the members of
        one `UnionDoc` share its collection; the root (or the first member) owns it.
        """
        spec = spec_of(document_type)
        if spec.area is Area.TENANT and not spec.tenant_keyed:
            raise ConfigurationError(
                "tenant-area documents must carry tenant_id", document_type=document_type
            )
        key = (spec.area, spec.name)
        known = self._by_key.get(key)
        if known is not None and known is not document_type:
            if not _same_family(known, document_type):
                raise ConfigurationError(
                    f"{document_type.__name__} and {known.__name__} both claim "
                    f"{spec.area}.{spec.name}"
                )
            if spec_of(known) != spec:
                raise ConfigurationError(
                    f"{document_type.__name__} shares {spec.area}.{spec.name} with "
                    f"{known.__name__} but not its tenancy, version or delete rules"
                )
            if collection_root(document_type) is document_type:
                self._by_key[key] = document_type  # the root registered after a child
        else:
            self._by_key[key] = document_type
        self._members[document_type] = None

    def get(self, area: Area, name: str) -> type[BaseDocument] | None:
        """The class stored in `name` within `area`, if registered."""
        return self._by_key.get((area, name))

    def in_area(self, area: Area) -> list[type[BaseDocument]]:
        """Every class of one area, in registration order."""
        return [cls for (a, _), cls in self._by_key.items() if a is area]

    def all(self) -> list[type[BaseDocument]]:
        """Every registered class, those sharing a collection included."""
        return list(self._members)

    def __contains__(self, document_type: object) -> bool:
        return document_type in self._members


def _same_family(first: type[BaseDocument], second: type[BaseDocument]) -> bool:
    """True when Beanie itself stores both classes in one collection."""
    if collection_root(first) is collection_root(second):
        return True
    unions = {getattr(getattr(c, "Settings", None), "union_doc", None) for c in (first, second)}
    return len(unions) == 1 and None not in unions
