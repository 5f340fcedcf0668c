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
    not_registered,
)
from caas_data.documents.beanie_state import collection_name, collection_root, is_abstract
from caas_data.errors import ConfigurationError
from caas_data.tenancy.field_encryption import FieldEncryption
from caas_data.tenancy.rules import ANY_AT_INSERT

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
    # stored name -> how it is encrypted: always, and only when the layer encrypts personal data
    encrypted: Mapping[str, FieldEncryption] = field(default_factory=dict)
    personal: Mapping[str, FieldEncryption] = field(default_factory=dict)


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
    versions = [step.version for step in document_type.caas_schema_steps]
    if versions != list(range(2, 2 + len(versions))):
        raise ConfigurationError(
            f"{document_type.__name__}: `caas_schema_steps` must lead to versions 2, 3, ... in "
            f"order, not {versions}",
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
        tenant_access=document_type.caas_tenant_access,
        protected=_protected_defaults(document_type),
        writable_when=dict(document_type.caas_writable_when),
        encrypted=_encrypted_fields(document_type, document_type.caas_encrypted_fields),
        personal=_encrypted_fields(document_type, document_type.caas_personal_fields),
    )


# Fields the layer reads, filters or pins itself: they must stay readable by the server.
_NEVER_ENCRYPTED = frozenset(
    {"_id", "tenant_id", "__v", "created_at", "updated_at", "deleted_at", "deleted_by",
     "schema_version"}
)  # fmt: skip


def _encrypted_fields(
    document_type: type[BaseDocument], declared: Mapping[str, Any]
) -> dict[str, FieldEncryption]:
    """Check a class's encrypted-field declaration; stored name -> algorithm."""
    if not declared:
        return {}
    if document_type.caas_area is not Area.TENANT:
        raise ConfigurationError(
            "encrypted fields are tenant data (one data key per tenant): declare them on a "
            "tenant document",
            document_type=document_type,
        )
    result: dict[str, FieldEncryption] = {}
    for name, how in declared.items():
        info = document_type.model_fields.get(name)
        stored = (info.alias or name) if info is not None else None
        try:
            algorithm = FieldEncryption(how)
        except ValueError:
            algorithm = None
        if stored is None or algorithm is None:
            raise ConfigurationError(
                f"encrypted field {name!r} must be a field of the class, encrypted "
                f"'deterministic' or 'random' (got {how!r})",
                document_type=document_type,
            )
        if stored in _NEVER_ENCRYPTED or name in document_type.caas_protected_fields:
            raise ConfigurationError(
                f"{name!r} is read by the layer itself and cannot be encrypted",
                document_type=document_type,
            )
        result[stored] = algorithm
    return result


def _protected_defaults(document_type: type[BaseDocument]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name in document_type.caas_protected_fields:
        info = document_type.model_fields.get(name)
        if info is None:
            raise ConfigurationError(
                f"protected field {name!r} is not a field", document_type=document_type
            )
        if info.is_required():
            result[info.alias or name] = ANY_AT_INSERT  # given when created, fixed after
        elif info.default_factory is not None:
            result[info.alias or name] = info.default_factory()
        else:
            result[info.alias or name] = info.default
    return result


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

    def require(self, document_type: type[BaseDocument]) -> None:
        """Refuse a class this layer was not given: it would run without its indexes."""
        if document_type not in self._members:
            raise not_registered(document_type)


def _same_family(first: type[BaseDocument], second: type[BaseDocument]) -> bool:
    """True when Beanie itself stores both classes in one collection."""
    if collection_root(first) is collection_root(second):
        return True
    unions = {getattr(getattr(c, "Settings", None), "union_doc", None) for c in (first, second)}
    return len(unions) == 1 and None not in unions
