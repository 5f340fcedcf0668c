"""The read path's loader (`documents/loading.py`) validates exactly like `model_validate`.

It drops two Python model validators from the class's schema and does their work around it:
stored data written around the layer must still be refused, and older shapes upcast.
"""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId
from pydantic import ValidationError

from caas_data import DataLayer, SchemaVersionError, tenant_scope
from caas_data.documents.base import utcnow
from caas_data.documents.loading import load_stored, stored_loader
from caas_data.saas import User, UserRepository


def _stored(**changes: Any) -> dict[str, Any]:
    now = utcnow()
    raw = {
        "_id": ObjectId(), "tenant_id": "acme", "__v": 2, "created_at": now, "updated_at": now,
        "schema_version": 1, "external_id": "u-1", "display_name": "Ada",
    }  # fmt: skip
    raw.update(changes)
    return raw


def _outcome(call: Any) -> Any:
    """The document made, or the error's type and details."""
    try:
        return ("ok", call())
    except ValidationError as error:
        return [(e["type"], e["loc"]) for e in error.errors()]
    except SchemaVersionError as error:
        return (type(error), str(error))


async def test_the_loader_is_the_fast_path_and_equals_model_validate(
    caas_layer: DataLayer,
) -> None:
    assert stored_loader(User) is not User.model_validate  # initialised by connect()
    raw = _stored()
    loaded, validated = load_stored(User, raw), User.model_validate(raw)
    assert loaded == validated and type(loaded) is User
    assert loaded.__pydantic_fields_set__ == validated.__pydantic_fields_set__
    assert loaded.__pydantic_private__ == validated.__pydantic_private__
    # The loader builds the private attributes itself: each document gets its own dict.
    again = load_stored(User, raw)
    assert again.__pydantic_private__ == loaded.__pydantic_private__
    assert again.__pydantic_private__ is not loaded.__pydantic_private__


@pytest.mark.parametrize(
    "changes",
    [
        {"display_name": 7},  # a wrong type, written around the layer
        {"__v": -1},  # a constraint
        {"external_id": None},
        {"_id": "not an id"},
        {"schema_version": 99},  # newer than the code
        {"schema_version": "1"},  # not a version: the field decides (lax int)
        {"created_at": "yesterday"},
    ],
)
async def test_odd_stored_data_is_treated_as_model_validate_treats_it(
    caas_layer: DataLayer, changes: dict[str, Any]
) -> None:
    raw = _stored(**changes)
    loaded = _outcome(lambda: load_stored(User, raw))
    assert loaded == _outcome(lambda: User.model_validate(raw))
    assert changes.get("schema_version") == "1" or loaded[0] != "ok"  # the bad ones fail


async def test_a_row_without_a_version_reads_as_model_validate_reads_it(
    caas_layer: DataLayer,
) -> None:
    raw = _stored()
    del raw["schema_version"]
    assert load_stored(User, raw) == User.model_validate(raw)


async def test_reads_through_the_repository_use_it(caas_layer: DataLayer, tenant: str) -> None:
    async with tenant_scope(tenant):
        users = caas_layer.repo(UserRepository)
        made = await users.create({"external_id": "x-1", "display_name": "X"})
        raw = await users.collection()._privileged().find_one({"_id": made.id})
        assert raw is not None
        await (
            users.collection()
            ._privileged()
            .update_one({"_id": made.id}, {"$set": {"display_name": 12}})
        )
        with pytest.raises(Exception) as caught:
            await users.get(made.id)
        assert "display_name" in str(caught.value)
