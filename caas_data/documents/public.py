"""The public face of a document: what an API may return, without the layer's storage names.

A stored document carries bookkeeping a client must not depend on: `_id` and `__v` (storage
names), `schema_version` and Beanie's `revision_id` (the layer's own), `deleted_by` (an
audit detail) and secret fields (`repr=False`: key and token hashes). `public_model(User)` is a
pydantic model of the rest, with `id` (a string) and `version` (what `If-Match` carries):

```python
UserOut = public_model(User)            # cached: the same class on every call
UserOut.of(user)                        # from a document
public_dump(user)                       # the same as a JSON-ready dict
```

It also validates from a document or its stored dict, so a FastAPI handler may simply
`return user` with `response_model=UserOut`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Self

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from caas_data.documents.base import BaseDocument
from caas_data.driver_errors import secret_fields

__all__ = ["INTERNAL_FIELDS", "PublicModel", "public_dump", "public_model"]

INTERNAL_FIELDS = frozenset({"revision_id", "schema_version", "deleted_by"})
"""Fields no public model shows, besides each class's secret (`repr=False`) fields."""

_models: dict[tuple[type[BaseDocument], frozenset[str]], type[PublicModel]] = {}


def _as_str(value: Any) -> Any:
    return None if value is None else str(value)


class PublicModel(BaseModel):
    """Base of the models `public_model` derives; `of(document)` builds one."""

    model_config = ConfigDict(extra="ignore", from_attributes=True)

    document_type: ClassVar[type[BaseDocument]]

    # `_id` is an ObjectId (or another key type) in the document: a string on the wire.
    id: Annotated[str, BeforeValidator(_as_str)] = Field(
        validation_alias=AliasChoices("id", "_id"), description="The document's id."
    )

    @classmethod
    def of(cls, document: BaseDocument) -> Self:
        """The public view of `document` (a document of this model's class)."""
        if not isinstance(document, cls.document_type):
            raise TypeError(
                f"{cls.__name__} shows {cls.document_type.__name__} documents, "
                f"not {type(document).__name__}"
            )
        return cls.model_validate(document)


def public_model(
    document_type: type[BaseDocument], *, exclude: Iterable[str] = ()
) -> type[PublicModel]:
    """The public model of `document_type`: `<Name>Public`, cached per class and `exclude`.

    Args:
        document_type: the document class shown.
        exclude: more fields to leave out (the class's own internal ones).
    """
    hidden = INTERNAL_FIELDS | secret_fields(document_type) | frozenset(exclude)
    key = (document_type, hidden)
    model = _models.get(key)
    if model is not None:
        return model
    fields: dict[str, Any] = {}
    for name, info in document_type.model_fields.items():
        if name in hidden or name == "id":
            continue
        aliases = [name] + [a for a in (info.alias,) if a and a != name]
        description = info.description
        if name == "version" and "__v" in aliases:
            description = "The version every write increments: send it back in If-Match."
        fields[name] = (
            info.annotation,
            Field(validation_alias=AliasChoices(*aliases), description=description),
        )
    model = create_model(
        f"{document_type.__name__}Public",
        __base__=PublicModel,
        __doc__=f"A {document_type.__name__} as the API shows it.",
        **fields,
    )
    model.document_type = document_type
    _models[key] = model
    return model


def public_dump(document: BaseDocument, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """`document` as a JSON-ready dict without storage names, internal or secret fields."""
    return public_model(type(document), exclude=exclude).of(document).model_dump(mode="json")
