"""Beanie's document encoder at `model_dump` speed, where both give the same document.

Beanie's instance methods (`insert`, `replace`, `save`, state management, actions) turn a
document into its stored dict with `get_dict`, a Python walk of every value through its
`Encoder`: about 240 us for the benchmark's 6 KB document against 15 us for pydantic's
`model_dump`, most of what Beanie's API costs over the typed floor (issue 16).

For most classes the two give the very same dict, key for key and value for value: every
field is a str, int, float, bool, datetime, ObjectId, str/int enum or None, or a list, a
str-keyed dict, an Optional/Union or a plain pydantic model of those. Beanie keeps such values
as they are and so does `model_dump` in python mode. This module proves that per class, from
the declared field types, and otherwise keeps Beanie's encoder:

- whatever Beanie converts (dates, decimals, UUIDs, bytes, URLs, secrets, sets...), links,
  `_class_id`/union documents, `bson_encoders`, revisions and `keep_nulls=False` go to
  Beanie's own `get_dict`;
- so does anything pydantic would serialise differently from the value itself: serializers,
  computed fields, extra fields, an alias that differs from the serialisation alias;
- at run time a value that does not match its declared type (assigned without validation)
  makes `model_dump(warnings="error")` raise, and that document goes to Beanie's encoder too;
  so does one whose `Any`-typed field (`metadata: dict[str, Any]`) holds anything but plain
  JSON-like values, datetimes and ObjectIds, or whose nested model has a subclass.

Only the layer's own documents take the fast path; a plain Beanie class keeps Beanie's
function untouched. `get_dict` is rebound once, on import, in the two Beanie modules that call
it (`beanie.odm.documents`, `beanie.odm.queries.find`), so every instance method Beanie runs on
the layer's documents (and the layer's own `writes`) uses it.
"""

from __future__ import annotations

import datetime
import enum
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import beanie.odm.documents as beanie_documents
import beanie.odm.queries.find as beanie_find
from beanie import Document, PydanticObjectId
from beanie.odm.utils.dump import get_dict
from bson import ObjectId
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    JsonValue,
    RootModel,
    StringConstraints,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticSerializationError

from caas_data.documents.base import BaseDocument

__all__ = ["BEANIE_KEPT_TYPES", "beanie_get_dict", "document_dict", "dumps_like_beanie"]

# Beanie's own, for every case not proven here.
beanie_get_dict: Callable[..., dict[str, Any]] = get_dict

_SCALARS: frozenset[Any] = frozenset({str, int, float, bool, datetime.datetime, type(None)})
# Metadata that only constrains or validates: serialisation is the bare type's.
_NEUTRAL_METADATA = (
    annotated_types.BaseMetadata,
    annotated_types.GroupedMetadata,
    StringConstraints,
    AfterValidator,
    BeforeValidator,
)


@dataclass(frozen=True, slots=True)
class _Plan:
    """How the fast path dumps one document class."""

    field_names: dict[str, str]  # stored key (alias) -> field name, for Beanie's `exclude`
    # pydantic dumps a subclass instance as the declared model; Beanie walks all its fields.
    # So a nested model with a subclass (declared at any time) sends its documents to Beanie.
    nested_models: tuple[type[BaseModel], ...]
    # Fields typed with `Any` (e.g. `dict[str, Any]` metadata): their values are checked at
    # each call, since pydantic keeps a Decimal or a date there and Beanie converts it.
    checked_fields: tuple[str, ...]

    def dumps_alike(self, values: dict[str, Any]) -> bool:
        """False when this document must take Beanie's encoder."""
        if any(model.__subclasses__() for model in self.nested_models):
            return False
        return all(_plain_value(values.get(name)) for name in self.checked_fields)


_plans: dict[type[Any], _Plan | None] = {}
_UNPLANNED: Any = object()
_GET = object.__getattribute__


def _plain_annotation(annotation: Any, seen: set[type[Any]], any_ok: bool = False) -> bool:
    """True if Beanie's encoder and `model_dump` keep every valid value of this type alike.

    `any_ok`: `Any` passes too (a field whose values are then checked at each call).
    """
    if annotation in _SCALARS or annotation is JsonValue:
        return True  # JsonValue: JSON's types, every one a BSON scalar, list or str-keyed dict
    if annotation is Any:
        return any_ok
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        inner, *metadata = get_args(annotation)
        return all(isinstance(m, _NEUTRAL_METADATA) for m in metadata) and _plain_annotation(
            inner, seen, any_ok
        )
    if origin is Literal:
        return all(type(value) in (str, int, bool) for value in get_args(annotation))
    if origin in (Union, types.UnionType):
        return all(_plain_annotation(arg, seen, any_ok) for arg in get_args(annotation))
    if origin is list:
        (item,) = get_args(annotation) or (Any,)
        return _plain_annotation(item, seen, any_ok)
    if origin is dict:
        key, value = get_args(annotation) or (Any, Any)
        # Beanie keeps a str or an enum key and turns any other into a str; pydantic keeps it.
        str_key = key is str or (
            isinstance(key, type) and issubclass(key, enum.Enum) and issubclass(key, str)
        )
        return str_key and _plain_annotation(value, seen, any_ok)
    if not isinstance(annotation, type) or origin is not None:
        return False
    if annotation is ObjectId or annotation.__name__ == "PydanticObjectId":
        return annotation is ObjectId or annotation.__module__.startswith("beanie.")
    if issubclass(annotation, enum.Enum):
        # A str/int enum member is a BSON scalar to Beanie and stays a member in model_dump.
        return issubclass(annotation, (str, int))
    if issubclass(annotation, BaseModel):
        return _plain_model(annotation, seen)
    return False


def _plain_field(field: FieldInfo, seen: set[type[Any]], any_ok: bool = False) -> bool:
    if field.exclude is True:
        return True  # neither writes it
    if field.serialization_alias != field.alias or getattr(field, "exclude_if", None):
        return False
    if not all(isinstance(m, _NEUTRAL_METADATA) for m in field.metadata):
        return False
    return _plain_annotation(field.annotation, seen, any_ok)


# The values Beanie's encoder returns as they are (it checks BSON's scalar types before any
# conversion), each type exactly: a str enum, a subclass, a tuple or a Decimal goes to Beanie.
# An `Any` field may hold these for the fast path (pydantic's inference returns them as they
# are); `queries` copies filters made of them.
BEANIE_KEPT_TYPES: frozenset[type[Any]] = frozenset(
    {str, int, float, bool, type(None), datetime.datetime, ObjectId, PydanticObjectId}
)


def _plain_value(value: Any) -> bool:
    kind = type(value)
    if kind in BEANIE_KEPT_TYPES:
        return True
    if kind is list:
        return all(_plain_value(item) for item in value)
    if kind is dict:
        return all(type(key) is str and _plain_value(item) for key, item in value.items())
    return False


def _plain_model_body(model: type[BaseModel]) -> bool:
    """No serializer, computed field or extra field: `model_dump` gives the fields alone."""
    decorators = model.__pydantic_decorators__
    return not (
        decorators.field_serializers
        or decorators.model_serializers
        or model.model_computed_fields
        or model.model_config.get("extra") == "allow"
    )


def _plain_model(model: type[BaseModel], seen: set[type[Any]]) -> bool:
    """A pydantic model whose `model_dump` is its fields' values, as Beanie's walk gives them."""
    if model in seen:
        return True  # a recursive model: decided by the fields already being checked
    if issubclass(model, (Document, RootModel)):
        return False  # Beanie encodes these its own way (class ids, links, the root)
    if not _plain_model_body(model):
        return False
    seen.add(model)
    return all(_plain_field(field, seen) for field in model.model_fields.values())


def _build_plan(document_type: type[Any]) -> _Plan | None:
    if not issubclass(document_type, BaseDocument):
        return None  # a plain Beanie class keeps Beanie's encoder as it is
    fields = document_type.model_fields
    if not _plain_model_body(document_type):
        return None
    nested: set[type[Any]] = set()
    checked = []
    for name, field in fields.items():
        for any_ok in (False, True):
            # A fresh `seen` per attempt: a model assumed plain while a failed attempt was
            # checking it must not count as proven.
            seen: set[type[Any]] = {document_type}
            if _plain_field(field, seen, any_ok):
                nested |= seen
                if any_ok:
                    checked.append(name)
                break
        else:
            return None
    return _Plan(
        {(field.alias or name): name for name, field in fields.items()},
        tuple(nested - {document_type}),
        tuple(checked),
    )


def _plan(document_type: type[Any]) -> _Plan | None:
    plan: _Plan | None = _plans.get(document_type, _UNPLANNED)
    if plan is _UNPLANNED:
        plan = _plans[document_type] = _build_plan(document_type)
    return plan


def dumps_like_beanie(document_type: type[Any]) -> bool:
    """True if the layer dumps this class itself (its dict is proven equal to Beanie's)."""
    return _plan(document_type) is not None


def document_dict(
    document: Document,
    to_db: bool = False,
    exclude: set[str] | None = None,
    keep_nulls: bool = True,
) -> dict[str, Any]:
    """Beanie's `get_dict`, by `model_dump` for a layer document proven to dump alike."""
    dumped = _dumped(document, exclude) if keep_nulls else None
    if dumped is None:
        return beanie_get_dict(document, to_db=to_db, exclude=exclude, keep_nulls=keep_nulls)
    return dumped


def _dumped(document: Document, exclude: set[str] | None) -> dict[str, Any] | None:
    """The document by `model_dump`, or None where Beanie's encoder decides."""
    document_type = type(document)
    plan = _plan(document_type)
    if plan is None or _beanie_decides(document_type):
        return None
    # Plain attribute reads: lazy-model's __getattribute__ costs a call per attribute.
    if _GET(document, "__pydantic_private__").get("_store"):
        document.parse_store()  # loaded with `lazy_parse`: Beanie's encoder parses it first
    values = _GET(document, "__dict__")
    if not plan.dumps_alike(values):
        return None
    excluded = _excluded(plan, exclude, values.get("id") is None)
    try:
        dumped: dict[str, Any] = document.model_dump(
            by_alias=True, exclude=excluded, warnings="error"
        )
    except PydanticSerializationError:  # a value unlike its type: Beanie's walk decides
        return None
    return dumped


def _beanie_decides(document_type: type[Any]) -> bool:
    """Settings of the initialised class under which Beanie's encoder adds or converts keys."""
    settings = document_type.get_settings()
    return bool(
        settings.use_revision
        or settings.union_doc is not None
        or settings.bson_encoders
        or document_type._class_id
        or document_type.get_link_fields()
    )


def _excluded(plan: _Plan, exclude: Iterable[str] | None, no_id: bool) -> set[str] | None:
    """Beanie's `exclude` (stored keys) as field names; `_id` goes when the id is unset."""
    names = {plan.field_names[key] for key in exclude or () if key in plan.field_names}
    if no_id:
        names.add(plan.field_names.get("_id", "id"))
    return names or None


# The modules whose code calls `get_dict` by its imported name: the instance methods, and the
# find query's `replace_one` that `replace()` runs.
for _module in (beanie_documents, beanie_find):
    _module.get_dict = document_dict  # type: ignore[attr-defined]
