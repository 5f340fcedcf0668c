"""What a repository knows of its document's fields: stored names, and checked changes.

Read once per document class. Callers name fields by their Python name or alias; the
repository writes stored names, refuses the fields the layer owns, and validates a change
with only the changed fields unless a validator of the class looks across fields.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic

from caas_data.documents.base import BaseDocument
from caas_data.documents.writes import dump_document, shallow_copy
from caas_data.driver_errors import translate_driver_errors
from caas_data.errors import DocumentValidationError, TenantMismatch

__all__ = ["PROTECTED_FIELDS", "UPSERT_STAMPED", "FieldSchema", "SortSpec", "schema_of"]

D = TypeVar("D", bound=BaseDocument)
SortSpec = str | Sequence[str | tuple[str, int]]

# Fields the layer owns: callers change them only through the dedicated methods.
PROTECTED_FIELDS = frozenset(
    {"_id", "id", "tenant_id", "__v", "version", "created_at", "updated_at", "deleted_at",
     "deleted_by"}
)  # fmt: skip
# Fields the guard stamps on an upsert's insert; `$setOnInsert` leaves them to it.
UPSERT_STAMPED = frozenset({"_id", "tenant_id", "__v", "created_at", "updated_at"})


# Model validators that never look across fields of a document in memory: Beanie's
# `fill_back_refs` (links, unused here) and the layer's schema-version upcaster (identity on
# a document at the class's version, which every loaded or validated document is).
_SHAPE_VALIDATOR_MODULES = frozenset({"beanie.odm.documents", "caas_data.documents.base"})


def _may_look_across(validator: Any) -> bool:
    """Whether a field validator takes more than the value (`info`, or a wrap's handler)."""
    try:
        parameters = inspect.signature(validator).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in parameters)


@dataclass(frozen=True, slots=True)
class FieldSchema:
    """The fields of one document class, and the checks of names and changes against them."""

    document_type: type[BaseDocument]
    stored: dict[str, str]  # Python name and alias -> stored name
    attributes: dict[str, str]  # Python name and alias -> Python attribute name
    # Whether a change must be validated with the whole document: a model validator, or a
    # field validator that takes `info` (it may read other fields in `info.data`), sees more
    # than the changed field. Beanie's `fill_back_refs` (links, unused here) does not count.
    whole_validation: bool

    def stored_field(self, name: object) -> str:
        """The stored name of a (possibly dotted) field path; refuses unknown fields."""
        if type(name) is not str:  # a str subclass could answer split() differently
            raise DocumentValidationError(
                f"field names are strings, got {type(name).__name__}",
                fields=(str(name)[:100],),
                document_type=self.document_type,
            )
        root = name.split(".", 1)[0]
        stored = self.stored.get(root)
        if stored is None:
            raise DocumentValidationError(
                f"{self.document_type.__name__} has no field {name!r}",
                fields=(name,),
                document_type=self.document_type,
            )
        return stored + name[len(root) :]

    def check_changes(self, changes: Mapping[str, Any], *, method: str = "update()") -> None:
        """Refuse an empty change, nested paths and the fields the layer owns."""
        if not changes:
            raise DocumentValidationError("no changes given", document_type=self.document_type)
        for name in changes:
            if type(name) is str and "." in name:
                raise DocumentValidationError(
                    f"{method} sets top-level fields, not {name!r}: use update_many() with an "
                    "update operator for nested paths",
                    fields=(name,),
                    document_type=self.document_type,
                )
            stored = self.stored_field(name)
            if name in PROTECTED_FIELDS or stored in PROTECTED_FIELDS:
                error = TenantMismatch if stored == "tenant_id" else DocumentValidationError
                raise error(
                    f"{name!r} is managed by the layer and cannot be updated",
                    document_type=self.document_type,
                )

    def apply_changes(self, document: D, changes: Mapping[str, Any]) -> tuple[D, dict[str, Any]]:
        """Validate field changes on `document`; return the new model and the `$set`."""
        self.check_changes(changes)
        try:
            if self.whole_validation:
                data = document.model_dump()
                data.update(changes)
                updated = type(document).model_validate(data)
            else:
                # Only the changed fields (with their field validators): the rest of the
                # document was valid when it was read, and no model validator looks across.
                updated = shallow_copy(document)
                validator = type(document).__pydantic_validator__
                for name, value in changes.items():
                    validator.validate_assignment(updated, self.attributes[name], value)
        except pydantic.ValidationError as exc:
            raise DocumentValidationError.from_pydantic(
                exc, document_type=self.document_type
            ) from exc
        return updated, self.set_fields(updated, changes)

    def set_fields(self, updated: BaseDocument, changes: Mapping[str, Any]) -> dict[str, Any]:
        """The `$set` of `changes` as `updated` holds them (validated, stored names)."""
        dumped = updated.model_dump(by_alias=True, include={self.attributes[n] for n in changes})
        return {self.stored[name]: dumped[self.stored[name]] for name in changes}

    def check_filter(self, query: Mapping[str, Any] | None) -> dict[str, Any]:
        """A filter as a dict, its top-level field names checked (operators pass)."""
        if query is None:
            return {}
        if not isinstance(query, Mapping):
            raise DocumentValidationError(
                f"a filter must be a mapping, got {type(query).__name__}",
                document_type=self.document_type,
            )
        result = dict(query.items())
        for key in result:
            if type(key) is not str or not key.startswith("$"):
                self.stored_field(key)
        return result

    def sort_keys(self, sort: SortSpec | None) -> list[tuple[str, int]]:
        """`sort` as stored (field, direction) pairs, ties broken by `_id`."""
        items: Sequence[str | tuple[str, int]]
        if sort is None:
            items = []
        elif isinstance(sort, str):
            items = [sort]
        else:
            items = sort
        keys: list[tuple[str, int]] = []
        for item in items:
            if isinstance(item, str):
                name, direction = (item[1:], -1) if item.startswith("-") else (item, 1)
            else:
                name, direction = item
                if direction not in (1, -1):
                    raise DocumentValidationError(
                        f"sort direction must be 1 or -1, got {direction!r}", fields=(name,)
                    )
            keys.append((self.stored_field(name), direction))
        if not any(name == "_id" for name, _ in keys):
            keys.append(("_id", keys[-1][1] if keys else 1))  # ties broken by _id
        return keys

    def projection(self, model: object) -> dict[str, int]:
        """The stored fields a smaller pydantic model reads (its names are this document's)."""
        if not (isinstance(model, type) and issubclass(model, pydantic.BaseModel)):
            raise DocumentValidationError(
                f"project must be a pydantic model class, got {model!r}",
                fields=("project",),
                document_type=self.document_type,
            )
        fields = {"_id": 1}
        for name, info in model.model_fields.items():
            fields[self.stored_field(info.alias or name)] = 1
        return fields

    def validate_fields(self, changes: object) -> dict[str, Any]:
        """`changes` validated field by field, without the document, as a `$set`."""
        if not isinstance(changes, Mapping):
            raise DocumentValidationError(
                f"changes must be a mapping, got {type(changes).__name__}",
                document_type=self.document_type,
            )
        self.check_changes(changes, method="update_by_id()")
        blank = self.document_type.model_construct()
        validator = self.document_type.__pydantic_validator__
        # As every read and insert: a secret field's value never shows in the error.
        with translate_driver_errors(document_type=self.document_type):
            for name, value in changes.items():
                validator.validate_assignment(blank, self.attributes[name], value)
        return self.set_fields(blank, changes)

    def upsert_update(
        self, key: object, changes: Mapping[str, Any], on_insert: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The `$set`/`$setOnInsert` of an upsert, from one validated candidate document.

        The candidate (`on_insert`, `key` and `changes`) is validated whole before any I/O;
        the guard stamps the layer's fields (tenant, version, times) on the insert.
        """
        if not isinstance(key, Mapping) or not key:
            raise DocumentValidationError(
                "upsert needs a key: equalities on a unique key's fields",
                fields=("key",),
                document_type=self.document_type,
            )
        for name, value in key.items():
            stored = self.stored_field(name)
            # Not `_id` either: an upsert by id could insert another tenant's id (update_by_id).
            if isinstance(value, Mapping) or stored in PROTECTED_FIELDS:
                raise DocumentValidationError(
                    f"upsert key {name!r} must be a plain value of a field the caller owns",
                    fields=(str(name),),
                    document_type=self.document_type,
                )
        for part in (changes, on_insert):
            if part:
                self.check_changes(part, method="upsert()")
        with translate_driver_errors(document_type=self.document_type):
            candidate = self.document_type.model_validate({**on_insert, **key, **changes})
        stored_values = {
            k: v for k, v in dump_document(candidate).items() if k not in UPSERT_STAMPED
        }
        set_fields = {self.stored[n]: stored_values[self.stored[n]] for n in changes}
        keyed = {self.stored_field(name) for name in key}
        update: dict[str, Any] = {
            "$setOnInsert": {
                k: v for k, v in stored_values.items() if k not in set_fields and k not in keyed
            }
        }
        if set_fields:
            update["$set"] = set_fields
        return update


_schemas: dict[type[Any], FieldSchema] = {}


def schema_of(document_type: type[BaseDocument]) -> FieldSchema:
    """The field schema of a document class (built once per class)."""
    schema = _schemas.get(document_type)
    if schema is None:
        stored: dict[str, str] = {}
        attributes: dict[str, str] = {}
        for name, info in document_type.model_fields.items():
            alias = info.alias or name
            stored[name] = stored[alias] = alias
            attributes[name] = attributes[alias] = name
        decorators = document_type.__pydantic_decorators__
        whole = any(
            getattr(decorator.func, "__module__", None) not in _SHAPE_VALIDATOR_MODULES
            for decorator in decorators.model_validators.values()
        ) or any(_may_look_across(d.func) for d in decorators.field_validators.values())
        schema = _schemas[document_type] = FieldSchema(document_type, stored, attributes, whole)
    return schema
