"""The document shapes of the ODM tasks, declared once and bound to each contender.

After MongoDB's ODM performance benchmark: a small flat document, a large one (~6 KB) and a
nested one. Each shape is a plain pydantic mixin; the typed floor, plain Beanie and the layer
get a class of it each, so every contender validates exactly the same fields.
"""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime
from typing import Any, ClassVar

from beanie import Document, PydanticObjectId
from bson import ObjectId
from pydantic import BaseModel, ConfigDict, Field
from pymongo import ASCENDING, IndexModel

from caas_data import PlatformDocument, Repository, TenantDocument

NESTED_PATH = "profile.address.city"


class SmallFields(BaseModel):
    name: str
    email: str
    age: int
    active: bool
    score: float
    tags: list[str]


class Item(BaseModel):
    sku: str
    quantity: int
    price: float
    note: str


class LargeFields(BaseModel):
    title: str
    body: str
    counter: int
    ratio: float
    labels: list[str]
    attributes: dict[str, str]
    items: list[Item]


class Geo(BaseModel):
    lat: float
    lon: float


class Address(BaseModel):
    street: str
    city: str
    zip: str
    geo: Geo


class Profile(BaseModel):
    bio: str
    address: Address
    links: list[str]


class NestedFields(BaseModel):
    username: str
    profile: Profile
    level: int


# -- the schema's standard fields, stored by every contender -------------------------------


class StandardFields(BaseModel):
    """What every tenant document of the schema carries (caas-schema-index.md).

    The layer stores them on every document; the baselines store them too, so every contender
    reads and writes the same documents and the ratios measure the layer, not the schema.
    """

    model_config = ConfigDict(populate_by_name=True)
    tenant_id: str
    schema_version: int = 1
    created_at: datetime
    updated_at: datetime
    version: int = Field(0, alias="__v")


def standard_fields(tenant_id: str) -> dict[str, Any]:
    """The standard fields of a new document, as a raw PyMongo user of the schema sets them."""
    now = datetime.now(UTC)
    return {
        "tenant_id": tenant_id,
        "schema_version": 1,
        "created_at": now,
        "updated_at": now,
        "__v": 0,
    }


# -- the typed floor: plain pydantic models with the stored id --------------------------


class _Typed(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)
    id: ObjectId = Field(alias="_id")


class TypedSmall(SmallFields, StandardFields, _Typed):
    pass


class TypedLarge(LargeFields, StandardFields, _Typed):
    pass


class TypedNested(NestedFields, StandardFields, _Typed):
    pass


# -- plain Beanie: its own Document classes on its own database ---------------------------


class BeanieSmall(SmallFields, StandardFields, Document):
    class Settings:
        name = "small"


class BeanieLarge(LargeFields, StandardFields, Document):
    class Settings:
        name = "large"


class BeanieNested(NestedFields, StandardFields, Document):
    class Settings:
        name = "nested"
        indexes = [IndexModel([("tenant_id", ASCENDING), (NESTED_PATH, ASCENDING)])]


class BeanieBulk(SmallFields, StandardFields, Document):
    class Settings:
        name = "bulk"


BEANIE_DOCUMENTS: list[type[Document]] = [BeanieSmall, BeanieLarge, BeanieNested, BeanieBulk]


# -- the layer: tenant documents (and one platform twin for "tenancy off") ---------------


class OurSmall(SmallFields, TenantDocument):
    class Settings:
        name = "bench_small"


class OurLarge(LargeFields, TenantDocument):
    class Settings:
        name = "bench_large"


class OurNested(NestedFields, TenantDocument):
    class Settings:
        name = "bench_nested"
        indexes = [IndexModel([("tenant_id", ASCENDING), (NESTED_PATH, ASCENDING)])]


class OurBulk(SmallFields, TenantDocument):
    class Settings:
        name = "bench_bulk"


class SmallSummary(BaseModel):
    """A projection of the bulk documents into a smaller model."""

    id: PydanticObjectId = Field(alias="_id")
    name: str
    score: float


class PlatformSmall(SmallFields, PlatformDocument):
    """The same small document with tenancy switched off (platform area, no scope)."""

    class Settings:
        name = "bench_platform_small"


OUR_DOCUMENTS: list[type[Any]] = [OurSmall, OurLarge, OurNested, OurBulk, PlatformSmall]


class SmallRepository(Repository[OurSmall]):
    document_type = OurSmall


class LargeRepository(Repository[OurLarge]):
    document_type = OurLarge


class NestedRepository(Repository[OurNested]):
    document_type = OurNested


class BulkRepository(Repository[OurBulk]):
    document_type = OurBulk


class PlatformSmallRepository(Repository[PlatformSmall]):
    document_type = PlatformSmall


# -- data --------------------------------------------------------------------------------


class Data:
    """Deterministic documents (as plain dicts, without `_id`) for every task."""

    _letters: ClassVar[str] = string.ascii_letters + string.digits

    def __init__(self, seed: int = 16) -> None:
        self._random = random.Random(seed)

    def _text(self, n: int) -> str:
        return "".join(self._random.choices(self._letters, k=n))

    def small(self, i: int) -> dict[str, Any]:
        return {
            "name": f"user-{i}",
            "email": f"user{i}@example.com",
            "age": 20 + i % 50,
            "active": i % 2 == 0,
            "score": i * 0.5,
            "tags": ["a", "b", self._text(6)],
        }

    def large(self, i: int) -> dict[str, Any]:
        return {
            "title": f"large-{i}",
            "body": self._text(2000),
            "counter": i,
            "ratio": i / 7,
            "labels": [self._text(12) for _ in range(20)],
            "attributes": {f"k{j}": self._text(16) for j in range(30)},
            "items": [
                {"sku": self._text(10), "quantity": j, "price": j * 1.25, "note": self._text(40)}
                for j in range(25)
            ],
        }

    def nested(self, i: int) -> dict[str, Any]:
        return {
            "username": f"nested-{i}",
            "level": i % 10,
            "profile": {
                "bio": self._text(120),
                "links": [f"https://example.com/{i}/{j}" for j in range(3)],
                "address": {
                    "street": f"{i} Main Street",
                    "city": f"city-{i}",
                    "zip": f"{i:05d}",
                    "geo": {"lat": i / 1000, "lon": -i / 1000},
                },
            },
        }
