"""Beanie's instance writes without their wrappers, where the wrappers would do nothing.

`caas_data.documents.bare_writes` runs the bodies of `insert()`, `replace()` and `save()` itself
on a class with no actions, links, state management, revision or `validate_on_save`. These
tests hold it to Beanie's path: each feature (or an override of a hook the wrappers call) sends
the class back to Beanie's code, and a bare class stores what a twin that takes Beanie's
path stores (the same keys, in order, with the same value types), with the same results,
errors and tenant guard.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

import pytest
from beanie import (
    BulkWriter,
    Insert,
    Link,
    PydanticObjectId,
    Replace,
    Save,
    ValidateOnSave,
    after_event,
)
from beanie.odm.actions import ActionDirections
from pydantic import BaseModel

from caas_data import (
    CaasDataError,
    DataLayer,
    DocumentValidationError,
    NotFoundError,
    TenantContextMissing,
    TenantDocument,
    TenantMismatch,
    Tier,
    VersionConflict,
    tenant_scope,
)
from caas_data.documents.bare_writes import bare_writes
from caas_data.testing import ServerHandle
from caas_data.testing.helpers import layer_for_tests, new_tenant_id

from .conftest import typed

WHEN = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class Mood(StrEnum):
    GOOD = "good"
    BAD = "bad"


class Point(BaseModel):
    x: int
    y: int = 0


class CardFields(BaseModel):
    text: str
    amount: int = 0
    when: datetime = WHEN
    mood: Mood = Mood.GOOD
    point: Point = Point(x=1)
    tags: list[str] = []
    ref: PydanticObjectId | None = None


class Card(CardFields, TenantDocument):
    class Settings:
        name = "bare_cards"


class Twin(CardFields, TenantDocument):
    """Card's fields, and an action on every wrapped event: it takes Beanie's path."""

    class Settings:
        name = "bare_twins"

    @after_event(Insert, Replace, Save, ValidateOnSave)
    def count(self) -> None:
        Twin.actions_run += 1

    actions_run: ClassVar[int] = 0


class StateManaged(CardFields, TenantDocument):
    class Settings:
        name = "bare_state"
        use_state_management = True


class ValidatedOnSave(CardFields, TenantDocument):
    class Settings:
        name = "bare_validated"
        validate_on_save = True


class Revised(CardFields, TenantDocument):
    class Settings:
        name = "bare_revised"
        use_revision = True


class Linked(CardFields, TenantDocument):
    other: Link[Card] | None = None

    class Settings:
        name = "bare_linked"


class OwnValidateSelf(CardFields, TenantDocument):
    class Settings:
        name = "bare_own_validate"

    async def validate_self(self, *args: Any, **kwargs: Any) -> None:
        self.amount += 100


class OwnSaveState(CardFields, TenantDocument):
    class Settings:
        name = "bare_own_state"

    def _save_state(self) -> None:
        self.tags = [*self.tags, "state"]


NOT_BARE = [StateManaged, ValidatedOnSave, Revised, Linked, OwnValidateSelf, OwnSaveState, Twin]
DOCUMENTS = [Card, *NOT_BARE]


@pytest.fixture(scope="module")
async def bare_layer(caas_server: ServerHandle) -> AsyncIterator[DataLayer]:
    async with layer_for_tests(caas_server.uri, documents=DOCUMENTS) as layer:
        yield layer


async def _tenant(layer: DataLayer, tier: Tier = Tier.PRO) -> str:
    tenant = new_tenant_id("bw")
    await layer.tenants.provision(tenant, tier=tier)
    return tenant


def test_only_a_class_whose_wrappers_do_nothing_writes_bare(bare_layer: DataLayer) -> None:
    assert bare_writes(Card)
    assert [cls.__name__ for cls in NOT_BARE if bare_writes(cls)] == []


async def test_a_hook_override_runs_as_beanie_runs_it(bare_layer: DataLayer) -> None:
    async with tenant_scope(await _tenant(bare_layer), layer=bare_layer):
        validated = await OwnValidateSelf(text="a").insert()
        state = await OwnSaveState(text="a").insert()
        await validated.save()
        await state.save()
    # insert() runs each hook once; save() runs it, and so does the replace() it calls.
    assert validated.amount == 300
    assert state.tags == ["state", "state", "state"]


async def test_actions_run_once_per_write_where_a_class_has_them(bare_layer: DataLayer) -> None:
    async with tenant_scope(await _tenant(bare_layer), layer=bare_layer):
        Twin.actions_run = 0
        twin = await Twin(text="a").insert()
        inserted = Twin.actions_run
        twin.amount = 1
        await twin.replace()
        replaced = Twin.actions_run - inserted
        twin.amount = 2
        await twin.save()
        saved = Twin.actions_run - inserted - replaced
    assert (inserted, replaced, saved) == (2, 2, 2)  # the event's action and ValidateOnSave's
    async with tenant_scope(await _tenant(bare_layer), layer=bare_layer):
        twin = await Twin(text="b").insert()
        before = Twin.actions_run
        twin.amount = 3
        await twin.save(skip_actions=[ActionDirections.AFTER])
        await twin.save(skip_actions=["count"])
    assert Twin.actions_run == before  # Beanie's save() passes skip_actions to its wrappers


def _stored(document: Any) -> dict[str, Any]:
    """The stored document, as the running scope's collection holds it, without its times."""
    return {k: v for k, v in document.items() if k not in ("created_at", "updated_at")}


async def _both(card: Card, twin: Twin) -> tuple[dict[str, Any], dict[str, Any]]:
    mine = await Card.get_pymongo_collection().find_one({"_id": card.id})
    theirs = await Twin.get_pymongo_collection().find_one({"_id": twin.id})
    assert mine is not None and theirs is not None
    return _stored(mine), _stored(theirs)


@pytest.mark.parametrize("tier", [Tier.FREE, Tier.PRO, Tier.ENTERPRISE], ids=str)
async def test_a_bare_write_stores_what_beanies_path_stores(
    bare_layer: DataLayer, tier: Tier
) -> None:
    data: dict[str, Any] = {
        "text": "hello",
        "amount": 3,
        "mood": Mood.BAD,
        "point": Point(x=2, y=3),
        "tags": ["a", "b"],
        "ref": PydanticObjectId(),
    }
    async with tenant_scope(await _tenant(bare_layer, tier), layer=bare_layer):
        shared_id = PydanticObjectId()
        card = await Card(**data, id=shared_id).insert()
        twin = await Twin(**data, id=shared_id).insert()
        assert card.id == twin.id == shared_id
        mine, theirs = await _both(card, twin)
        assert typed(mine) == typed(theirs)
        for document in (card, twin):
            document.tags.append("c")
            document.mood = Mood.GOOD
            await document.replace()
        mine, theirs = await _both(card, twin)
        assert typed(mine) == typed(theirs)
        assert mine["__v"] == 1
        for document in (card, twin):
            document.point = Point(x=9)
            await document.save()
        mine, theirs = await _both(card, twin)
        assert typed(mine) == typed(theirs)
        assert mine["__v"] == 2 and mine["point"] == {"x": 9, "y": 0}
        fresh = await Card(text="new").insert()
        again = await Twin(text="new").insert()
    assert type(fresh.id) is type(again.id) is PydanticObjectId
    assert (card.version, card.updated_at) != (0, card.created_at)
    assert card.version == twin.version == 2


async def test_save_upserts_a_new_document_and_replaces_a_stored_one(bare_layer: DataLayer) -> None:
    async with tenant_scope(await _tenant(bare_layer), layer=bare_layer):
        card = Card(text="a", id=PydanticObjectId())  # an id, never stored: Beanie upserts
        assert await card.save() is card
        card.amount = 5
        await card.save()
        stored = await Card.get(card.id)
    assert stored is not None
    assert (stored.amount, stored.version) == (5, 1)
    assert card.version == 1


async def test_bare_writes_keep_beanies_errors(bare_layer: DataLayer) -> None:
    async with tenant_scope(await _tenant(bare_layer), layer=bare_layer):
        for cls in (Card, Twin):  # bare, and Beanie's path
            with pytest.raises(DocumentValidationError, match="has no id") as no_id:
                await cls(text="no id").replace()
            assert isinstance(no_id.value, ValueError)  # what Beanie raises
        with pytest.raises(NotFoundError):
            await Card(text="ghost", id=PydanticObjectId()).replace()
        card = await Card(text="a").insert()
        stale = card.model_copy()
        card.amount = 1
        await card.save()
        stale.amount = 2
        with pytest.raises(VersionConflict):
            await stale.save()
        with pytest.raises(VersionConflict):
            await stale.replace()
        stored = await Card.get(card.id)
    assert stored is not None and stored.amount == 1


async def test_a_bulk_writer_still_defers_a_bare_classs_save(bare_layer: DataLayer) -> None:
    async with tenant_scope(await _tenant(bare_layer), layer=bare_layer):
        card = await Card(text="a").insert()
        card.amount = 7
        async with BulkWriter() as writer:
            await card.save(bulk_writer=writer)
            await Card(text="queued").save(bulk_writer=writer)
            assert (await Card.get(card.id)).amount == 0  # type: ignore[union-attr]
        stored = await Card.get(card.id)
        queued = await Card.find_one({"text": "queued"})
    assert stored is not None and stored.amount == 7
    assert queued is not None


async def test_a_class_initialised_anew_is_asked_again(
    bare_layer: DataLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Card.get_settings()
    assert bare_writes(Card)
    monkeypatch.setattr(
        Card, "_document_settings", settings.model_copy(update={"use_state_management": True})
    )
    assert not bare_writes(Card)
    monkeypatch.setattr(Card, "_document_settings", settings)
    assert bare_writes(Card)


@pytest.mark.parametrize("tier", [Tier.FREE, Tier.PRO, Tier.ENTERPRISE], ids=str)
async def test_a_bare_write_never_reaches_another_tenant(bare_layer: DataLayer, tier: Tier) -> None:
    mine, theirs = await _tenant(bare_layer, tier), await _tenant(bare_layer, tier)
    async with tenant_scope(theirs, layer=bare_layer):
        their_card = await Card(text="theirs").insert()
        before = await Card.get_pymongo_collection().find_one({"_id": their_card.id})
    async with tenant_scope(mine, layer=bare_layer):
        their_card.text = "taken"
        with pytest.raises(TenantMismatch):
            await their_card.save()
        with pytest.raises(TenantMismatch):
            await their_card.replace()
        with pytest.raises(TenantMismatch):
            await Card(text="planted", tenant_id=theirs).insert()
        # Their id under my tenant: the guarded filter matches nothing of theirs.
        posing = Card(text="posing", id=their_card.id)
        with pytest.raises(NotFoundError):
            await posing.replace()
        assert await Card.get(their_card.id) is None
        # Not stored here, so save() inserts: beside theirs (shared) the id is taken.
        if tier is Tier.FREE:
            with pytest.raises(CaasDataError):
                await posing.save()
        else:
            await posing.save()
            assert (await Card.get(their_card.id)) == posing
    async with tenant_scope(theirs, layer=bare_layer):
        after = await Card.get_pymongo_collection().find_one({"_id": their_card.id})
        planted = await Card.find_one({"text": "planted"})
    assert after == before
    assert planted is None


async def test_a_bare_write_outside_a_scope_fails_loudly(bare_layer: DataLayer) -> None:
    async with tenant_scope(await _tenant(bare_layer), layer=bare_layer):
        card = await Card(text="kept past its scope").insert()
    card.amount = 9
    for write in (card.save, card.replace, card.insert):
        with pytest.raises(TenantContextMissing):
            await write()
    with pytest.raises(TenantContextMissing):  # a new one cannot even name its tenant
        Card(text="new")
