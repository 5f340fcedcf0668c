"""Loading stored documents: one validated fast path shared by the layer's read paths.

`Model.model_validate(raw)` on a `BaseDocument` runs two Python model validators per document
before pydantic-core sees a field: the schema-version upcaster (`_caas_upcast`) and Beanie's
`fill_back_refs` (a no-op on a class without back-links). For bulk reads that is a measurable
part of the cost per document (issue 16). A loader here validates with a pydantic-core
validator built from the class's own core schema, with those two wrappers taken off and their
work done around it:

- the upcaster runs in Python only when the stored `schema_version` is not the class's own
  (the common case is one dict lookup); otherwise the very same function runs first;
- `fill_back_refs` is dropped only when the initialised class has no link fields, where it
  returns its input unchanged;
- the private attributes are set by the loader from the class's single-init plan
  (`base._single_private_init`) rather than by pydantic-core calling back into Python
  (about 0.5 us a document); a class with its own `model_post_init` keeps pydantic's call.

Every field is still validated by pydantic-core exactly as `model_validate` would (this is
never `model_construct`): data written around the layer is checked, errors are the same
`ValidationError`s. A class whose schema has any other model validator around the upcaster
keeps `model_validate` as it is, so the order of validators never changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_core import SchemaValidator

__all__ = ["fast_loader", "load_stored", "load_stored_many", "stored_loader"]

T = TypeVar("T")
Loader = Callable[[Mapping[str, Any]], Any]

_loaders: dict[type[Any], Loader | None] = {}
_UNBUILT: Any = object()
_UNKNOWN: Any = object()  # not a plain dict: the upcaster decides
_PRIVATE_SLOT: Any = BaseModel.__dict__["__pydantic_private__"]


def _function_of(schema: Mapping[str, Any]) -> Any:
    function = schema.get("function")
    return function.get("function") if isinstance(function, Mapping) else None


def _named(function: Any, name: str) -> bool:
    return getattr(getattr(function, "__func__", function), "__name__", None) == name


def _validator(document_type: type[Any], schema: Any, config: Any) -> SchemaValidator:
    """A validator of `schema` itself.

    pydantic-core reuses a complete class's own validator for any `model` schema of that
    class ("prebuilt"), which would bring the stripped validators back; it decides on the
    class's `__pydantic_complete__`, so that flag is lowered while this one is built.
    """
    complete = document_type.__dict__.get("__pydantic_complete__")
    document_type.__pydantic_complete__ = False
    try:
        return SchemaValidator(schema, config)
    finally:
        document_type.__pydantic_complete__ = complete


def _build(document_type: type[Any]) -> tuple[Loader | None, bool]:
    """The fast loader of `document_type` (None: pydantic's own path), and if it may be cached."""
    outer = getattr(document_type, "__pydantic_core_schema__", None)
    if not isinstance(outer, dict):
        return None, False  # not complete yet (forward references): pydantic decides
    model = outer["schema"] if outer.get("type") == "definitions" else outer
    if model.get("type") != "model" or model.get("cls") is not document_type:
        return None, True
    links = getattr(document_type, "_link_fields", None)
    if links is None:
        return None, False  # Beanie has not initialised the class: its links are unknown
    upcast: Any = None
    inner = model["schema"]
    while inner.get("type") == "function-before":
        function = _function_of(inner)
        if upcast is None and _named(function, "_caas_upcast"):
            upcast = function
        elif _named(function, "fill_back_refs") and not links:
            pass
        else:
            return None, True  # another model validator: keep pydantic's order
        inner = inner["schema"]
    if upcast is None:
        return None, True
    stripped = {**model, "schema": inner}
    private = getattr(getattr(document_type, "model_post_init", None), "_caas_private", None)
    if private is not None:
        stripped.pop("post_init", None)  # the loader builds the private dict itself, below
    if model is not outer:
        stripped = {**outer, "schema": stripped}
    validate = _validator(document_type, stripped, model.get("config")).validate_python
    current = document_type.caas_schema_version()
    # A new document (no schema_version) at version 1: the upcaster would return it as is.
    fresh = None if current == 1 else _UNKNOWN
    statics, factories = private if private is not None else ({}, ())

    def load(raw: Mapping[str, Any]) -> Any:
        stored = raw.get("schema_version") if type(raw) is dict else _UNKNOWN
        if stored is current or stored is fresh or (type(stored) is int and stored == current):
            document = validate(raw)
        else:
            document = validate(upcast(raw))
        if private is not None:  # else pydantic's own post-init ran inside `validate`
            attributes = dict(statics)
            for name, factory in factories:
                attributes[name] = factory()
            _PRIVATE_SLOT.__set__(document, attributes)
        return document

    return load, True


def fast_loader(document_type: type[Any]) -> Loader | None:
    """The fast loader of `document_type`, or None where pydantic's own path applies."""
    loader = _loaders.get(document_type, _UNBUILT)
    if loader is _UNBUILT:
        loader, cacheable = _build(document_type)
        if cacheable:
            _loaders[document_type] = loader
    built: Loader | None = loader
    return built


def stored_loader(document_type: type[T]) -> Callable[[Mapping[str, Any]], T]:
    """The function that validates one stored document of `document_type` (cached per class)."""
    loader = fast_loader(document_type)
    return document_type.model_validate if loader is None else loader  # type: ignore[attr-defined]


def load_stored(document_type: type[T], raw: Mapping[str, Any]) -> T:
    """One stored document, validated into `document_type`."""
    return stored_loader(document_type)(raw)


def load_stored_many(document_type: type[T], raws: Iterable[Mapping[str, Any]]) -> list[T]:
    """Stored documents, each validated into `document_type`."""
    load = stored_loader(document_type)
    return [load(raw) for raw in raws]
