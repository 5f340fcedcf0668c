"""The layer's `document_dict` gives exactly Beanie's `get_dict`, fast path or not.

Beanie's instance methods encode a document with `get_dict`; on the layer's documents that
name is `caas_data.documents.encoding.document_dict`, which uses `model_dump` for classes
whose every field type both encode alike. These tests compare it with Beanie's own function,
key order included, on a class of every plain type, on a class per type that Beanie converts,
and on values that do not match their declared type.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum
from typing import Annotated, Any, Literal

import beanie.odm.documents as beanie_documents
import beanie.odm.queries.find as beanie_find
import pytest
from beanie import Document, PydanticObjectId
from bson import Decimal128, ObjectId
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    computed_field,
    field_serializer,
)

from caas_data import DataLayer, TenantDocument, Tier, tenant_scope
from caas_data.documents.encoding import beanie_get_dict, document_dict, dumps_like_beanie
from caas_data.documents.saas.groups import GroupMember
from caas_data.documents.saas.messaging import Conversation, Message, Reaction, ReadReceipt
from caas_data.documents.saas.users import User
from caas_data.testing import ServerHandle
from caas_data.testing.helpers import (
    layer_for_tests,
    new_tenant_id,
)


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Size(IntEnum):
    S = 1
    L = 2


class Shape(Enum):  # neither str nor int: Beanie stores its value
    ROUND = "round"


class Inner(BaseModel):
    label: str
    weight: float = 1.0
    code: str | None = Field(default=None, alias="c")


class Tree(BaseModel):
    name: str
    children: list[Tree] = []


class Plain(TenantDocument):
    text: str
    amount: int
    ratio: float
    flag: bool
    when: datetime
    other: PydanticObjectId | None = None
    tags: list[str] = []
    scores: dict[str, int] = {}
    by_colour: dict[Colour, int] = {}
    props: dict[str, JsonValue] = {}
    metadata: dict[str, Any] = {}  # checked value by value at each call
    anything: Any = None
    inner: Inner
    inners: list[Inner] = []
    tree: Tree | None = None
    colour: Colour = Colour.RED
    size: Size = Size.S
    kind: Literal["a", "b"] = "a"
    note: str | None = None
    short: Annotated[str, StringConstraints(max_length=8)] = "x"
    renamed: int = Field(default=0, alias="rn")
    hidden: str = Field(default="h", exclude=True)

    class Settings:
        name = "encoding_plain"


class BareObjectId(TenantDocument):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    raw_id: ObjectId
    raw_ids: list[ObjectId] = []

    class Settings:
        name = "encoding_bare_object_id"


class WithDate(TenantDocument):
    day: date

    class Settings:
        name = "encoding_date"


class WithDecimal(TenantDocument):
    amount: Decimal

    class Settings:
        name = "encoding_decimal"


class WithUuid(TenantDocument):
    token: uuid.UUID

    class Settings:
        name = "encoding_uuid"


class WithBytes(TenantDocument):
    blob: bytes

    class Settings:
        name = "encoding_bytes"


class WithSet(TenantDocument):
    members: set[str]

    class Settings:
        name = "encoding_set"


class WithEnum(TenantDocument):
    shape: Shape

    class Settings:
        name = "encoding_enum"


class WithSerializer(TenantDocument):
    text: str

    @field_serializer("text")
    def _upper(self, value: str) -> str:
        return value.upper()

    class Settings:
        name = "encoding_serializer"


class WithComputed(TenantDocument):
    text: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def length(self) -> int:
        return len(self.text)

    class Settings:
        name = "encoding_computed"


class WithExtra(TenantDocument):
    model_config = ConfigDict(extra="allow")
    text: str

    class Settings:
        name = "encoding_extra"


class WithSerializationAlias(TenantDocument):
    text: str = Field(serialization_alias="t")

    class Settings:
        name = "encoding_serialization_alias"


class NestedDate(BaseModel):
    day: date


class WithNestedDate(TenantDocument):
    nested: NestedDate

    class Settings:
        name = "encoding_nested_date"


class Holder(BaseModel):
    name: str


class Filled(Holder):  # pydantic dumps a Filled as a Holder, without `extra`; Beanie does not
    extra: str


class Carrier(TenantDocument):
    held: Holder

    class Settings:
        name = "encoding_carrier"


class WithDateOrAny(TenantDocument):
    # Checked twice (without, then with `Any`): the second check must not take NestedDate,
    # which failed the first, for proven.
    either: NestedDate | dict[str, Any]

    class Settings:
        name = "encoding_date_or_any"


FALLBACKS: dict[type[TenantDocument], dict[str, Any]] = {
    WithDate: {"day": date(2026, 12, 1)},
    WithDecimal: {"amount": Decimal("9.99")},
    WithUuid: {"token": uuid.UUID(int=7)},
    WithBytes: {"blob": b"\x00\x01"},
    WithSet: {"members": {"a"}},
    WithEnum: {"shape": Shape.ROUND},
    WithSerializer: {"text": "abc"},
    WithComputed: {"text": "abc"},
    WithExtra: {"text": "abc", "spare": Decimal("2")},
    WithSerializationAlias: {"text": "abc"},
    WithNestedDate: {"nested": {"day": date(2026, 12, 1)}},
    WithDateOrAny: {"either": NestedDate(day=date(2026, 12, 1))},
}
DOCUMENTS = [Plain, BareObjectId, Carrier, *FALLBACKS]


def plain(**changes: Any) -> Plain:
    fields: dict[str, Any] = {
        "tenant_id": "t-encoding",
        "text": "hello",
        "amount": 3,
        "ratio": 0.5,
        "flag": True,
        "when": datetime(2026, 12, 1, 10, 30, tzinfo=UTC),
        "other": PydanticObjectId(),
        "tags": ["a", "b"],
        "scores": {"x": 1, "y": 2},
        "by_colour": {"red": 1},
        "props": {"a": [1, {"b": None}], "c": 1.5},
        "metadata": {"seen": datetime(2026, 1, 1, tzinfo=UTC), "by": ObjectId(), "n": [1, "x"]},
        "anything": {"k": [True, None]},
        "inner": {"label": "in", "c": "code"},
        "inners": [{"label": "one"}, {"label": "two", "weight": 2.0}],
        "tree": {"name": "root", "children": [{"name": "leaf"}]},
        "colour": Colour.BLUE,
        "size": Size.L,
        "kind": "b",
        "rn": 9,
    }
    return Plain.model_validate({**fields, **changes})


CALLS: list[dict[str, Any]] = [
    {"to_db": True},
    {"to_db": True, "exclude": ("_id",)},
    {"to_db": True, "exclude": ("tenant_id", "rn", "not-a-field")},
    {"to_db": False},
    {"to_db": True, "keep_nulls": False},
]


def same_as_beanie(document: Document, **call: Any) -> None:
    ours = document_dict(document, **{**call, "exclude": set(call.get("exclude", ()))})
    theirs = beanie_get_dict(document, **{**call, "exclude": set(call.get("exclude", ()))})
    assert ours == theirs
    assert list(ours) == list(theirs)  # the stored field order too
    assert [type(value) for value in ours.values()] == [type(v) for v in theirs.values()]


@pytest.fixture(scope="module")
async def encoding_layer(caas_server: ServerHandle) -> AsyncIterator[DataLayer]:
    async with layer_for_tests(caas_server.uri, documents=DOCUMENTS) as layer:
        yield layer


def test_beanie_instance_methods_encode_through_the_layer() -> None:
    assert beanie_documents.get_dict is document_dict
    assert beanie_find.get_dict is document_dict  # `replace()` runs the find query's replace_one


def test_plain_types_take_the_fast_path_and_converted_types_do_not() -> None:
    assert dumps_like_beanie(Plain)
    assert dumps_like_beanie(BareObjectId)
    for document_type in FALLBACKS:
        assert not dumps_like_beanie(document_type), document_type.__name__


def test_the_chat_documents_take_the_fast_path() -> None:
    # The hot classes of the platform: a change that sends them back to Beanie's walk (4-15x
    # the cost of a dump) shows here, not only in `make bench`.
    for document_type in (User, Conversation, Message, Reaction, ReadReceipt, GroupMember):
        assert dumps_like_beanie(document_type), document_type.__name__


def test_a_plain_beanie_class_keeps_beanies_encoder() -> None:
    class Elsewhere(Document):
        text: str

    assert not dumps_like_beanie(Elsewhere)


@pytest.mark.parametrize("call", CALLS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
async def test_every_plain_type_dumps_as_beanie_encodes_it(
    encoding_layer: DataLayer, call: dict[str, Any]
) -> None:
    same_as_beanie(plain(), **call)
    same_as_beanie(plain(id=PydanticObjectId(), note=None, tree=None), **call)
    bare = BareObjectId(tenant_id="t-encoding", raw_id=ObjectId(), raw_ids=[ObjectId()])
    same_as_beanie(bare, **call)


@pytest.mark.parametrize("document_type", list(FALLBACKS), ids=lambda t: t.__name__)
async def test_types_beanie_converts_keep_beanies_encoder(
    encoding_layer: DataLayer, document_type: type[TenantDocument]
) -> None:
    document = document_type.model_validate({"tenant_id": "t-encoding", **FALLBACKS[document_type]})
    for call in CALLS:
        same_as_beanie(document, **call)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ratio", Decimal("1.5")),  # assigned without validation: Beanie stores a Decimal128
        ("when", date(2026, 12, 1)),  # a date where a datetime is declared
        ("tags", {"a"}),  # a set where a list is declared
        ("scores", {1: 2}),  # a key that is not a str
        ("text", uuid.UUID(int=1)),
    ],
)
async def test_a_value_unlike_its_type_is_encoded_by_beanie(
    encoding_layer: DataLayer, field: str, value: Any
) -> None:
    document = plain()
    setattr(document, field, value)
    same_as_beanie(document, to_db=True)
    if isinstance(value, Decimal):
        assert document_dict(document, to_db=True)["ratio"] == Decimal128("1.5")
    in_place = plain()
    in_place.props["c"] = value  # changed inside a JSON field, which nothing validates
    same_as_beanie(in_place, to_db=True)


@pytest.mark.parametrize(
    "value",
    [
        Decimal("1.5"),
        date(2026, 12, 1),
        uuid.UUID(int=3),
        ("a", "b"),  # Beanie stores a list; pydantic's inference keeps the tuple
        {"a"},
        {1: "x"},
        {"deep": [{"er": Decimal("2")}]},
        Colour.RED,
        b"bytes",
        Shape.ROUND,
    ],
    ids=repr,
)
async def test_an_any_field_holding_what_beanie_converts_is_encoded_by_beanie(
    encoding_layer: DataLayer, value: Any
) -> None:
    assert dumps_like_beanie(Plain)  # the class qualifies; this value does not
    in_metadata, in_any = plain(metadata={"v": value}), plain(anything=value)
    same_as_beanie(in_metadata, to_db=True)
    same_as_beanie(in_any, to_db=True)
    if isinstance(value, Decimal):
        assert document_dict(in_metadata, to_db=True)["metadata"]["v"] == Decimal128("1.5")


async def test_a_subclass_of_a_nested_model_keeps_its_own_fields(
    encoding_layer: DataLayer,
) -> None:
    carrier = Carrier.model_validate(
        {"tenant_id": "t-encoding", "held": Filled(name="a", extra="b")}
    )
    assert dumps_like_beanie(Carrier)
    assert document_dict(carrier, to_db=True)["held"] == {"name": "a", "extra": "b"}
    same_as_beanie(carrier, to_db=True)


async def test_a_document_stored_and_read_back_lazily_encodes_alike(
    encoding_layer: DataLayer,
) -> None:
    tenant = new_tenant_id("enc")
    await encoding_layer.tenants.provision(tenant, tier=Tier.FREE)
    async with tenant_scope(tenant, layer=encoding_layer):
        stored = await plain(tenant_id=tenant).insert()
        lazy = await Plain.find({"_id": stored.id}, lazy_parse=True).to_list()
        assert len(lazy) == 1
        same_as_beanie(lazy[0], to_db=True)
        assert document_dict(lazy[0], to_db=True) == document_dict(stored, to_db=True)
        raw = await Plain.get_pymongo_collection().find_one({"_id": stored.id})
        assert raw is not None
        expected = document_dict(stored, to_db=True)
        assert list(raw) == list(expected)
        # BSON keeps milliseconds: the stamped times are compared by the test of the guard.
        untimed = {"created_at", "updated_at"}
        assert {k: v for k, v in raw.items() if k not in untimed} == {
            k: v for k, v in expected.items() if k not in untimed
        }
