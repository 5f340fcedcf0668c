"""Stored documents are built once: one validation, one private-attribute initialisation."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId
from pydantic import PrivateAttr

from caas_data import TenantDocument
from caas_data.documents import loading
from caas_data.documents.base import utcnow
from caas_data.documents.writes import shallow_copy
from caas_data.saas import User


def _stored_user() -> dict[str, Any]:
    now = utcnow()
    return {
        "_id": ObjectId(), "tenant_id": "acme", "__v": 3, "created_at": now, "updated_at": now,
        "schema_version": 1, "external_id": "u-1", "display_name": "Ada",
    }  # fmt: skip


def test_model_validate_does_not_run_init_again(monkeypatch: Any) -> None:
    calls: list[int] = []
    original = User.__pydantic_validator__

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(original, name)

        def validate_python(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            return original.validate_python(*args, **kwargs)

    monkeypatch.setattr(User, "__pydantic_validator__", Counting())
    # Once Beanie has initialised the class (a layer connected earlier in this process), a
    # plain dict goes through the stored-document loader instead: still exactly once.
    loader = loading.fast_loader(User)
    if loader is not None:

        def counting_loader(raw: Any) -> Any:
            calls.append(1)
            return loader(raw)

        monkeypatch.setitem(loading._loaders, User, counting_loader)
    user = User.model_validate(_stored_user())
    assert calls == [1]
    assert user.version == 3 and user.display_name == "Ada"


def test_private_attributes_are_set_once_and_fresh_per_document() -> None:
    a, b = User.model_validate(_stored_user()), User(external_id="u-2", display_name="B",
                                                      tenant_id="acme")  # fmt: skip
    assert set(a.__pydantic_private__ or {}) == set(User.__private_attributes__)
    assert a.__pydantic_private__ == b.__pydantic_private__
    # lazy-model's store of a document parsed whole is one shared, read-only empty mapping
    # (it is only ever read or replaced whole): nothing can leak through it.
    with pytest.raises(TypeError):
        a.__pydantic_private__["_store"]["x"] = 1  # type: ignore[index]
    assert b.__pydantic_private__["_store"] == {}  # type: ignore[index]
    a._store = {"x": 1}
    assert dict(a.__pydantic_private__["_store"]) == {"x": 1}  # type: ignore[index]
    assert b.__pydantic_private__["_store"] == {}  # type: ignore[index]


class WithOwnPostInit(TenantDocument):
    """A user's class with a post-init of its own keeps it."""

    label: str = "x"
    _seen: list[str] = PrivateAttr(default_factory=list)

    def model_post_init(self, context: Any, /) -> None:
        self._seen.append("post-init ran")

    class Settings:
        name = "with_own_post_init"


def test_a_classes_own_post_init_still_runs() -> None:
    document = WithOwnPostInit.model_validate({**_stored_user(), "label": "y"})
    assert document._seen == ["post-init ran"]
    assert "_store" in (document.__pydantic_private__ or {})


def test_the_update_copy_is_pydantics_shallow_copy() -> None:
    """`shallow_copy` (the update path's copy) gives what `model_copy()` gives, independent."""
    user = User.model_validate(_stored_user())
    ours, theirs = shallow_copy(user), user.model_copy()
    assert type(ours) is User and ours == theirs
    assert ours.__dict__ == theirs.__dict__ and ours.__dict__ is not user.__dict__
    assert ours.__pydantic_fields_set__ == theirs.__pydantic_fields_set__
    assert ours.__pydantic_private__ == theirs.__pydantic_private__
    assert ours.__pydantic_extra__ == theirs.__pydantic_extra__
    ours.display_name = "Changed"
    ours._saved_state = {"x": 1}
    assert user.display_name == "Ada" and user._saved_state != {"x": 1}
    assert "display_name" in ours.__pydantic_fields_set__
