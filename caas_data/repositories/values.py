"""Values every repository checks before any I/O: ints, limits, durations and ids.

A bad argument is the caller's `DocumentValidationError` here, never a driver error later.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId

from caas_data.documents.base import BaseDocument, utcnow
from caas_data.errors import DocumentValidationError

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "INT64_MAX",
    "MAX_PAGE_SIZE",
    "check_duration",
    "check_int",
    "check_limit",
    "parse_id",
    "parse_ids",
    "typed_equality",
]

INT64_MAX = 2**63 - 1
"""The largest integer BSON stores (int64): seqs, versions and counts stay within it."""
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def check_int(
    name: str,
    value: object,
    *,
    minimum: int = 0,
    maximum: int = INT64_MAX,
    document_type: type[Any] | None = None,
) -> int:
    """`value` as an int within [minimum, maximum], checked before any I/O.

    Seqs, versions, limits and counts are int64 on the server: a bigger Python int would fail
    in the driver's encoder, a bool is not a count, so both are the caller's error here.

    Raises:
        DocumentValidationError: not an int (or a bool), or out of range; `fields` is `(name,)`.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise DocumentValidationError(
            f"{name} must be an integer, got {type(value).__name__}",
            fields=(name,),
            document_type=document_type,
        )
    if not minimum <= value <= maximum:
        shown = (
            repr(value) if value.bit_length() <= 64 else f"an integer of {len(str(value))} digits"
        )
        raise DocumentValidationError(
            f"{name} must be between {minimum} and {maximum}, got {shown}",
            fields=(name,),
            document_type=document_type,
        )
    return value


def check_limit(limit: object, *, maximum: int = MAX_PAGE_SIZE) -> int:
    """A page size: an int in 1..`maximum` (the one limit check of every paged read)."""
    return check_int("limit", limit, minimum=1, maximum=maximum)


def check_duration(name: str, value: object) -> timedelta:
    """`value` as a positive `timedelta` whose end, counted from now, is a date.

    Lifetimes and durations become an expiry (`now + value`): a huge one would overflow
    `datetime` (a raw `OverflowError`), so it is the caller's error here, before any I/O.

    Raises:
        DocumentValidationError: not a timedelta, not positive, or ending after year 9999.
    """
    if not isinstance(value, timedelta):
        raise DocumentValidationError(
            f"{name} must be a timedelta, got {type(value).__name__}", fields=(name,)
        )
    if value <= timedelta(0):
        raise DocumentValidationError(f"{name} must be positive, got {value}", fields=(name,))
    # A day short of the end of the calendar: the expiry is computed a moment later.
    if value > datetime.max - utcnow().replace(tzinfo=None) - timedelta(days=1):
        raise DocumentValidationError(f"{name} ends after year 9999: {value}", fields=(name,))
    return value


def parse_id(
    value: Any, name: str = "id", *, document_type: type[Any] | None = None
) -> PydanticObjectId:
    """An id from a stored document, an ObjectId or its hex string (the one id parser).

    Raises:
        DocumentValidationError: anything else; `fields` is `(name,)`.
    """
    if type(value) is PydanticObjectId:  # the common case: an id read from a document
        return value
    if isinstance(value, BaseDocument) and value.id is not None:
        value = value.id
    if isinstance(value, ObjectId):
        return PydanticObjectId(value)
    if isinstance(value, str) and ObjectId.is_valid(value):
        return PydanticObjectId(value)
    shown = f"{document_type.__name__} id" if document_type is not None else name
    raise DocumentValidationError(
        f"invalid {shown} {value!r}", fields=(name,), document_type=document_type
    )


def parse_ids(values: Iterable[Any], name: str) -> list[PydanticObjectId]:
    """`parse_id` of each of a list of ids (a lone string is not a list)."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise DocumentValidationError(f"{name} must be a list of ids", fields=(name,))
    return [parse_id(value, name) for value in values]


def typed_equality(value: Any, bson_type: str) -> dict[str, Any]:
    """An equality the planner can match to a `{$type: ...}` partial index.

    MongoDB does not infer that `{f: "x"}` satisfies `partialFilterExpression
    {f: {$type: "string"}}`, and would scan instead; spelling the type out lets it use the index.
    """
    return {"$eq": value, "$type": bson_type}
