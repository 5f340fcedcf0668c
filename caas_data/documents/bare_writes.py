"""Beanie's instance writes without their wrappers, on a class where the wrappers do nothing.

Beanie wraps `insert()`, `replace()` and `save()` in self-validation, event actions and saved
state, and `replace()` builds a query object to send one filter. On a class with no actions for
these events, no links, and neither state management, revisions nor `validate_on_save`, all of
that runs and does nothing: 80-135 Python calls a write, the largest share of what Beanie's
API costs over the typed floor (issue 16). On such a class the layer sends the write itself: the
document as Beanie's encoder dumps it (`get_dict`), to the same routed and guarded collection,
with Beanie's results and errors. A class that uses any of those features, or overrides a
method the wrappers call, takes Beanie's own code, and so does every write to a bulk writer.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import beanie.odm.documents as beanie_documents
from beanie import Document
from beanie.exceptions import DocumentNotFound
from beanie.odm.actions import ActionDirections, ActionRegistry, EventTypes
from beanie.odm.utils.pydantic import get_field_type, get_model_fields, parse_object_as
from beanie.odm.utils.typing import extract_id_class
from pymongo.asynchronous.client_session import AsyncClientSession

from caas_data.documents.beanie_state import PerInitialisation

__all__ = ["bare_writes", "insert_directly", "replace_directly"]

# The events whose actions `insert()`, `replace()`, `save()` and `validate_self()` run.
_WRAPPED_EVENTS = (
    EventTypes.INSERT,
    EventTypes.REPLACE,
    EventTypes.SAVE,
    EventTypes.VALIDATE_ON_SAVE,
)
# What the wrappers call on the document: an override must run, so it takes Beanie's path.
_WRAPPER_HOOKS = (
    "validate_self",
    "_save_state",
    "use_state_management",
    "state_management_save_previous",
    "get_link_fields",
)


@dataclass(frozen=True)
class _Plan:
    bare: bool
    id_type: Any = None
    id_class: Any = None


def _build_plan(document_type: type[Document]) -> _Plan:
    settings = document_type.__dict__.get("_document_settings")
    if settings is None or not _wrappers_do_nothing(document_type, settings):
        return _Plan(bare=False)
    fields = get_model_fields(document_type)  # type: ignore[no-untyped-call]  # Beanie's
    id_type = get_field_type(fields["id"])  # type: ignore[no-untyped-call]
    return _Plan(bare=True, id_type=id_type, id_class=extract_id_class(id_type))


_plan = PerInitialisation(_build_plan)


def _wrappers_do_nothing(document_type: type[Document], settings: Any) -> bool:
    if settings.use_state_management or settings.validate_on_save or settings.use_revision:
        return False
    if document_type.get_link_fields():
        return False
    for event in _WRAPPED_EVENTS:
        for direction in ActionDirections:
            if ActionRegistry.get_action_list(document_type, event, direction):
                return False
    return all(
        inspect.getattr_static(document_type, name) is inspect.getattr_static(Document, name)
        for name in _WRAPPER_HOOKS
    )


def bare_writes(document_type: type[Document]) -> bool:
    """True when Beanie's write wrappers would do nothing for `document_type`.

    Asked again whenever `init_beanie` initialises the class anew (it registers the actions
    and links and gives the class new settings).
    """
    return _plan(document_type).bare


def _dump(document: Document, **options: Any) -> dict[str, Any]:
    """The document as Beanie's instance methods dump it (by their module's `get_dict`).

    Looked up at call time: the layer rebinds that name to its `model_dump` path
    (`documents/encoding.py`), which imports this module's users.
    """
    get_dict = beanie_documents.get_dict  # type: ignore[attr-defined]  # not in its __all__
    dumped: dict[str, Any] = get_dict(document, **options)
    return dumped


async def insert_directly(document: Document, session: AsyncClientSession | None) -> None:
    """The body of Beanie's `insert()` for a class without revisions or links."""
    document_type = type(document)  # class methods through the class: lazy-model's
    # `__getattribute__` makes every attribute read on the instance a Python call
    result = await document_type.get_pymongo_collection().insert_one(
        _dump(document, to_db=True, keep_nulls=document_type.get_settings().keep_nulls),
        session=session,
    )
    new_id = result.inserted_id
    plan = _plan(document_type)
    # The guard hands an ObjectId back as Beanie's PydanticObjectId; any other id type
    # keeps Beanie's conversion.
    if not isinstance(new_id, plan.id_class):
        new_id = parse_object_as(plan.id_type, new_id)
    document.id = new_id


async def replace_directly(document: Document, session: AsyncClientSession | None) -> None:
    """The body of Beanie's `replace()` for a class without revisions or links.

    The document has an id (`BaseDocument.replace` checks, on every path).

    Raises:
        DocumentNotFound: no stored document matched (as Beanie's).
    """
    document_type, document_id = type(document), document.id
    keep_nulls = document_type.get_settings().keep_nulls
    result = await document_type.get_pymongo_collection().replace_one(
        {"_id": document_id},
        _dump(document, to_db=True, exclude={"_id"}, keep_nulls=keep_nulls),
        session=session,
    )
    raw_result: Any = result.raw_result  # Beanie reads it so, even unacknowledged
    if not raw_result["updatedExisting"]:
        raise DocumentNotFound
