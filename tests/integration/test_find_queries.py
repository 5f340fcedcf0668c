"""Beanie's find queries on the layer's documents: the same filter and projection as Beanie's.

`caas_data.documents.queries` builds a layer document's filter by a plain copy where Beanie's
encoder would keep every value, and its projection once per class. These tests compare both
with Beanie's own functions (equal, same key order, same value types, fresh containers), send
every value Beanie converts back to Beanie, and check that what the fast path builds still
passes through the tenant guard.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any

import beanie.odm.queries.find as beanie_find
import pytest
from beanie import Document, Link, PydanticObjectId
from beanie.odm.operators.find.comparison import GT, In
from beanie.odm.operators.find.logical import Or
from beanie.odm.queries.find import FindQuery
from bson import ObjectId
from pydantic import BaseModel

from caas_data import DataLayer, TenantDocument, TenantMismatch, Tier, tenant_scope
from caas_data.documents.queries import (
    beanie_get_filter_query,
    beanie_get_projection,
    document_projection,
)
from caas_data.testing import ServerHandle
from caas_data.testing.helpers import layer_for_tests, new_tenant_id

from .conftest import typed

WHEN = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class Mood(StrEnum):
    GOOD = "good"
    BAD = "bad"


class Shade(Enum):  # neither str nor int: Beanie sends its value
    DARK = "dark"


class Point(BaseModel):
    x: int


class Card(TenantDocument):
    text: str
    amount: int = 0
    when: datetime = WHEN
    mood: Mood = Mood.GOOD
    ref: PydanticObjectId | None = None

    class Settings:
        name = "queries_cards"


class CardWithEncoders(TenantDocument):
    text: str

    class Settings:
        name = "queries_cards_encoded"
        bson_encoders = {str: str.upper}


class Pile(TenantDocument):
    top: Link[Card]

    class Settings:
        name = "queries_piles"


DOCUMENTS = [Card, CardWithEncoders, Pile]


@pytest.fixture(scope="module")
async def queries_layer(caas_server: ServerHandle) -> AsyncIterator[DataLayer]:
    async with layer_for_tests(caas_server.uri, documents=DOCUMENTS) as layer:
        yield layer


# Builders: Beanie puts the query expressions (`Card.text`) on a class when it initialises it.
OID, PID = ObjectId(), PydanticObjectId()
PLAIN_FILTERS: list[tuple[str, Callable[[], Any]]] = [
    ("by id", lambda: {"_id": OID}),
    ("by beanie id", lambda: {"_id": PID}),
    ("scalars", lambda: {"text": "a", "amount": 3, "ratio": 0.5, "flag": True, "gone": None}),
    ("datetime", lambda: {"when": {"$lt": WHEN}}),
    ("in list", lambda: {"amount": {"$in": [1, 2, 3]}, "tags": {"$all": ["x", "y"]}}),
    ("logical", lambda: {"$or": [{"text": "a"}, {"$and": [{"amount": 1}, {"ref": OID}]}]}),
    ("expression", lambda: Card.text == "a"),
    ("operator", lambda: GT(Card.amount, 2)),
    ("operator in list", lambda: In(Card.amount, [1, 2])),
    ("operator of operators", lambda: Or(Card.text == "a", GT(Card.amount, 1))),
    ("dotted expression", lambda: {Card.text: {"$exists": True}}),
]
# Filters holding a value Beanie's encoder converts (or keeps as a subclass).
CONVERTED_FILTERS: list[tuple[str, Callable[[], Any]]] = [
    ("str enum", lambda: {"mood": Mood.BAD}),
    ("enum", lambda: {"shade": Shade.DARK}),
    ("date", lambda: {"day": date(2026, 12, 2)}),
    ("decimal", lambda: {"amount": Decimal("1.5")}),
    ("uuid", lambda: {"token": uuid.UUID(int=3)}),
    ("tuple", lambda: {"amount": {"$in": (1, 2)}}),
    ("model", lambda: {"point": Point(x=1)}),
    ("bytes", lambda: {"blob": b"\x01"}),
    ("int key", lambda: {"scores": {1: "a"}}),
    ("enum operator", lambda: Card.mood == Mood.BAD),
]


def same_as_beanie(document_type: type[Document], *expressions: Any) -> dict[str, Any]:
    """Our filter for `expressions`, checked against Beanie's own for the same query."""
    ours_query = document_type.find(*expressions)
    theirs_query = document_type.find(*expressions)
    assert isinstance(ours_query, FindQuery)
    ours = ours_query.get_filter_query()
    theirs = beanie_get_filter_query(theirs_query)
    assert ours == theirs
    assert typed(ours) == typed(theirs)  # key order, key and value types, at every depth
    return ours


def test_the_find_query_builds_through_the_layer() -> None:
    assert beanie_find.get_projection is document_projection
    assert FindQuery.get_filter_query is not beanie_get_filter_query


@pytest.mark.parametrize(("name", "build"), PLAIN_FILTERS, ids=[n for n, _ in PLAIN_FILTERS])
async def test_a_plain_filter_is_copied_as_beanies_encoder_copies_it(
    queries_layer: DataLayer, name: str, build: Callable[[], Any]
) -> None:
    query = build()
    ours = same_as_beanie(Card, query)
    assert ours is not query  # a copy, as Beanie's encoder makes: the caller's stays as given
    if isinstance(query, dict):
        for key, value in query.items():
            if isinstance(value, dict | list):
                assert ours[key] is not value


@pytest.mark.parametrize(
    ("name", "build"), CONVERTED_FILTERS, ids=[n for n, _ in CONVERTED_FILTERS]
)
async def test_a_filter_beanie_converts_keeps_beanies_encoder(
    queries_layer: DataLayer, name: str, build: Callable[[], Any]
) -> None:
    same_as_beanie(Card, build())


async def test_converted_values_come_out_converted(queries_layer: DataLayer) -> None:
    assert same_as_beanie(Card, {"shade": Shade.DARK}) == {"shade": "dark"}
    assert same_as_beanie(Card, {"day": date(2026, 12, 2)}) == {"day": datetime(2026, 12, 2)}
    assert type(same_as_beanie(Card, {"mood": Mood.BAD})["mood"]) is Mood  # Beanie keeps it


async def test_several_expressions_combine_as_beanie_combines_them(
    queries_layer: DataLayer,
) -> None:
    combined = same_as_beanie(Card, {"text": "a"}, Card.amount == 1, {"when": {"$gt": WHEN}})
    assert list(combined) == ["$and"]


async def test_a_path_across_a_link_is_translated_as_beanie_translates_it(
    queries_layer: DataLayer,
) -> None:
    query = same_as_beanie(Pile, Pile.top.id == OID)
    assert query == {"top.$id": OID}  # an unfetched link is stored as a DBRef


async def test_a_class_with_bson_encoders_keeps_beanies_encoder(
    queries_layer: DataLayer,
) -> None:
    assert same_as_beanie(CardWithEncoders, {"text": "low"}) == {"text": "LOW"}


async def test_the_projection_is_beanies_and_each_query_gets_its_own(
    queries_layer: DataLayer,
) -> None:
    first = document_projection(Card)
    assert first == beanie_get_projection(Card)
    assert first is not None and list(first) == list(beanie_get_projection(Card) or {})
    first["text"] = 0  # a caller changing its copy changes no other query's
    assert document_projection(Card) == beanie_get_projection(Card)


def test_a_plain_beanie_model_keeps_beanies_projection() -> None:
    class Summary(BaseModel):
        text: str
        amount: int

    assert document_projection(Summary) == {"text": 1, "amount": 1}


async def test_reads_through_beanie_find_the_scopes_documents_only(
    queries_layer: DataLayer,
) -> None:
    mine, theirs = new_tenant_id("qa"), new_tenant_id("qb")
    for tenant in (mine, theirs):
        await queries_layer.tenants.provision(tenant, tier=Tier.FREE)
        async with tenant_scope(tenant, layer=queries_layer):
            await Card(text="same", amount=1, mood=Mood.BAD).insert()
    async with tenant_scope(mine, layer=queries_layer):
        for query in ({"text": "same"}, Card.text == "same", Card.mood == Mood.BAD):
            found = await Card.find(query).to_list()
            assert [card.tenant_id for card in found] == [mine]
            one = await Card.find_one(query)
            assert one is not None and one.tenant_id == mine
        projected = await Card.find_one(Card.text == "same")
        assert projected is not None and projected.amount == 1  # the projection names every field
        for query in ({"tenant_id": theirs}, Card.tenant_id == theirs):
            with pytest.raises(TenantMismatch):
                await Card.find_one(query)
