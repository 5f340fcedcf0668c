"""References between documents name a collection of the tenant, by its logical name.

Beanie stores a `Link` as a DBRef naming the linked class's collection. With a collection set
per tenant the physical name carries the tenant's prefix (`acme_users`): a reference storing
it would dangle once the tenant moves to another isolation model. So the guard passes every
document, update, filter and pipeline it sends through `logical_references`: a reference (a
`DBRef`, or its `{"$ref": ..., "$id": ...}` form) must name a collection the scope may reach,
by its logical name or by the scope's own physical name (stored as the logical one), and no
database (the layer decides where a tenant's data lives). Anything else (another tenant's
collection, an unknown one, another database) is refused: a reference never points outside
the tenant, whatever the isolation model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from bson import DBRef, Decimal128, ObjectId

from caas_data.errors import UnsafeOperation
from caas_data.tenancy.snapshots import MAX_DEPTH, plain_mapping, plain_str

__all__ = ["LogicalName", "logical_references"]

LogicalName = Callable[[str], str]
"""A collection name as a reference gives it -> its logical name in the scope (or raises)."""

_REF_KEYS = ("$ref", "$id", "$db")
_SCALARS = frozenset({str, int, float, bool, type(None), bytes, datetime, ObjectId, Decimal128})


def logical_references(value: Any, logical_name: LogicalName) -> Any:
    """`value` with every reference in it naming its collection's logical name.

    Values without references are returned as they are (the same object), so the common case
    costs one walk and no copy.
    """
    return _walk(value, logical_name, 0)


def _walk(value: Any, logical_name: LogicalName, depth: int) -> Any:
    if type(value) in _SCALARS:  # most values: no ABC check, no recursion
        return value
    if depth > MAX_DEPTH:
        raise UnsafeOperation("a document or filter nested too deeply")
    kind = type(value)
    if kind is not dict and kind is not list and isinstance(value, DBRef):
        return _logical_dbref(value, logical_name)
    if kind is dict or (kind is not list and isinstance(value, Mapping)):
        if "$ref" in value and "$id" in value:
            return _logical_ref_document(value, logical_name)
        copy: dict[Any, Any] | None = None
        for key, item in value.items():
            if type(item) in _SCALARS:  # inline: a call per field was most of a walk's cost
                continue
            new = _walk(item, logical_name, depth + 1)
            if new is not item:
                if copy is None:
                    copy = dict(value.items())
                copy[key] = new
        return value if copy is None else copy
    if kind is list or isinstance(value, list | tuple):
        items: list[Any] | None = None
        for index, item in enumerate(value):
            if type(item) in _SCALARS:
                continue
            new = _walk(item, logical_name, depth + 1)
            if new is not item:
                if items is None:
                    items = list(value)
                items[index] = new
        return value if items is None else items
    return value


def _refuse_database(database: Any) -> UnsafeOperation:
    return UnsafeOperation(
        f"a reference (DBRef) names database {database!r}: references name a collection of "
        "the tenant only, the layer decides where it lives"
    )


def _logical_dbref(ref: DBRef, logical_name: LogicalName) -> DBRef:
    if ref.database is not None:
        raise _refuse_database(ref.database)
    collection = plain_str(ref.collection)
    if collection is None:
        raise UnsafeOperation(f"a reference (DBRef) must name a collection, got {ref!r}")
    name = logical_name(collection)
    if name == collection and type(ref.collection) is str:
        return ref
    extra = {k: v for k, v in ref.as_doc().items() if k not in _REF_KEYS}
    return DBRef(name, ref.id, **extra)


def _logical_ref_document(value: Mapping[str, Any], logical_name: LogicalName) -> dict[str, Any]:
    """A reference written as a sub-document (PyMongo stores and reads it as a DBRef)."""
    document = plain_mapping(value, "a reference")
    if document.get("$db") is not None:
        raise _refuse_database(document["$db"])
    collection = plain_str(document["$ref"])
    if collection is None:
        raise UnsafeOperation(f"a reference's $ref must name a collection, got {value!r}")
    document["$ref"] = logical_name(collection)
    return document
