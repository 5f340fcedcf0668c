"""Beanie keeps its own semantics on our documents (issue 11), in every isolation model.

Indexed fields, classes declared after `connect()`, `init_beanie` called directly, `is_root`
hierarchies sharing a collection, the Beanie/PyMongo exception types users catch, and links:
stored as DBRefs naming the logical collection (so they survive a move between models),
fetched through `$lookup`s that stay in the tenant, never pointing outside it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal
from typing import ClassVar

import pytest
import pytest_asyncio
from beanie import (
    DecimalAnnotation,
    Indexed,
    Insert,
    Link,
    PydanticObjectId,
    Replace,
    Save,
    WriteRules,
    after_event,
    before_event,
    init_beanie,
)
from beanie.exceptions import DocumentNotFound, RevisionIdWasChanged
from bson import DBRef, Decimal128, ObjectId
from pymongo import InsertOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from caas_data import (
    BaseDocument,
    DataLayer,
    DuplicateError,
    NotFoundError,
    PlatformDocument,
    TenantDocument,
    TenantOwnedDocument,
    TenantUnionDoc,
    TenantView,
    UnsafeOperation,
    VersionConflict,
    tenant_scope,
)
from caas_data.documents.base import Area
from caas_data.documents.indexes import declared_indexes
from caas_data.documents.registry import spec_of
from caas_data.testing import ServerHandle, connect_for_tests, drop_prefix_databases
from caas_data.testing.helpers import new_tenant_id

from .conftest import MODEL_TIERS


class Member(TenantDocument):
    email: Indexed(str, unique=True)  # type: ignore[valid-type]
    nickname: Indexed(str) = "anon"  # type: ignore[valid-type]

    class Settings:
        name = "compat_members"


class Vehicle(TenantDocument):
    wheels: int = 4

    class Settings:
        name = "compat_vehicles"
        is_root = True


class Bike(Vehicle):
    bell: bool = True


class Unnamed(TenantDocument):
    tally: int = 0


class Feed(TenantUnionDoc):
    class Settings:
        name = "compat_feed"


class Post(TenantDocument):
    text: str = ""

    class Settings:
        name = "compat_posts"
        union_doc = Feed


class Poll(TenantDocument):
    options: list[str] = []

    class Settings:
        name = "compat_polls"
        union_doc = Feed


class Ledger(TenantDocument):
    amount: DecimalAnnotation
    day: date
    owner: Link[Member] | None = None
    note: str | None = None
    events: ClassVar[list[str]] = []

    @before_event(Insert)
    def _before(self) -> None:
        self.events.append("before insert")

    @after_event(Insert)
    def _after(self) -> None:
        self.events.append("after insert")

    @before_event(Save)
    def _before_save(self) -> None:
        self.events.append("before save")

    @after_event(Replace)
    def _after_replace(self) -> None:
        self.events.append("after replace")

    class Settings:
        name = "compat_ledgers"
        keep_nulls = False
        use_state_management = True


class MemberView(TenantView):
    email: str
    nickname: str

    class Settings:
        view_name = "compat_member_view"
        source = Member
        pipeline = [
            {"$match": {"nickname": {"$ne": "hidden"}}},
            {"$project": {"email": 1, "nickname": 1}},
        ]


DOCUMENTS = [Member, Vehicle, Bike, Unnamed, Post, Poll, Ledger]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def compat_layer(caas_server: ServerHandle) -> AsyncIterator[DataLayer]:
    layer = await connect_for_tests(caas_server.uri, documents=DOCUMENTS)
    # Views are not registered documents: the application initialises them with Beanie.
    await init_beanie(
        database=layer.client[f"{layer.prefix}_platform"],
        document_models=[MemberView],
        skip_indexes=True,
    )
    try:
        yield layer
    finally:
        await drop_prefix_databases(layer)
        await layer.close()


@pytest.fixture
def caas_layer(compat_layer: DataLayer) -> DataLayer:
    """The `tenant` fixture provisions on this module's layer (it knows DOCUMENTS)."""
    return compat_layer


# -- 2. Indexed(...) fields get their indexes ------------------------------------------


def test_indexed_fields_are_declared_behind_tenant_id() -> None:
    keys = {tuple(i.document["key"].items()): i.document for i in declared_indexes(Member)}
    unique = keys[(("tenant_id", 1), ("email", 1))]
    assert unique.get("unique") is True
    assert (("tenant_id", 1), ("nickname", 1)) in keys
    assert not keys[(("tenant_id", 1), ("nickname", 1))].get("unique")


async def test_indexed_unique_is_enforced_per_tenant(caas_layer: DataLayer, tenant: str) -> None:
    async with tenant_scope(tenant, layer=caas_layer):
        await Member(email="ada@example.com").insert()
        with pytest.raises(DuplicateKeyError) as caught:
            await Member(email="ada@example.com").insert()
        assert isinstance(caught.value, DuplicateError)
        assert caught.value.code == 11000
        assert caught.value.tenant_id == tenant
        assert await Member.find(Member.email == "ada@example.com").count() == 1
        info = await _raw(caas_layer, Member).index_information()
    unique = {name: spec["key"] for name, spec in info.items() if spec.get("unique")}
    assert unique == {"email_1": [("tenant_id", 1), ("email", 1)]}  # Beanie's name kept


# -- 3 and 7. Declaration order; init_beanie called directly ---------------------------


async def test_a_class_declared_after_connect_round_trips(
    caas_layer: DataLayer, tenant: str
) -> None:
    class Late(TenantDocument):
        note: str = "late"

        class Settings:
            name = f"compat_late_{tenant}"

    fields = Late.model_fields
    assert fields["id"].default is None
    assert fields["version"].alias == "__v"
    assert fields["tenant_id"].default_factory is not None
    caas_layer.registry.register(Late)
    # What a tool does: abstract bases in the list are skipped, not initialised or refused.
    await init_beanie(
        database=caas_layer.client[f"{caas_layer.prefix}_platform"],
        document_models=[BaseDocument, TenantDocument, TenantOwnedDocument, PlatformDocument, Late],
        skip_indexes=True,
    )
    assert "tenant_id" not in TenantDocument.__dict__
    async with tenant_scope(tenant, layer=caas_layer):
        late = await Late(note="hello").insert()
        found = await Late.find_one(Late.note == "hello")
        raw = await _raw(caas_layer, Late).find_one({"_id": late.id})
    assert found is not None
    assert found.id == late.id
    assert found.tenant_id == tenant
    assert raw is not None
    assert raw["__v"] == 0
    assert raw["tenant_id"] == tenant
    assert "version" not in raw


def test_a_class_without_settings_name_gets_beanies_default() -> None:
    assert spec_of(Unnamed).name == "Unnamed"


# -- 8. is_root hierarchies share one collection ---------------------------------------


async def test_an_is_root_hierarchy_shares_the_roots_collection(
    caas_layer: DataLayer, tenant: str
) -> None:
    assert Bike in caas_layer.registry
    assert spec_of(Bike).name == spec_of(Vehicle).name == "compat_vehicles"
    async with tenant_scope(tenant, layer=caas_layer):
        assert Bike.get_pymongo_collection().full_name == (
            Vehicle.get_pymongo_collection().full_name
        )
        bike = await Bike(wheels=2).insert()
        assert await _raw(caas_layer, Vehicle).count_documents({"_id": bike.id}) == 1


# -- 4. UnionDoc reads the tenant's placement -------------------------------------------


async def test_a_union_doc_reads_its_members_at_the_tenants_placement(
    caas_layer: DataLayer, tenant: str
) -> None:
    assert spec_of(Post).name == spec_of(Poll).name == "compat_feed"
    async with tenant_scope(tenant, layer=caas_layer):
        await Post(text="hi").insert()
        await Poll(options=["a", "b"]).insert()
        union = Feed.get_pymongo_collection().full_name
        assert union == Post.get_pymongo_collection().full_name
        assert tenant in union or union.endswith(".compat_feed")
        assert await Feed.find({}).count() == 2


# -- 1. Beanie's own insert path runs (encoder, links, class id, actions, state) --------


async def test_beanies_insert_encodes_links_and_runs_actions(
    caas_layer: DataLayer, tenant: str
) -> None:
    Ledger.events.clear()
    async with tenant_scope(tenant, layer=caas_layer):
        owner = await Member(email="owner@example.com").insert()
        ledger = await Ledger(amount=Decimal("10.25"), day=date(2024, 2, 29), owner=owner).insert()
        assert Ledger.events == ["before insert", "after insert"]
        raw = await _raw(caas_layer, Ledger).find_one({"_id": ledger.id})
        found = await Ledger.get(ledger.id)
        assert found is not None
        await found.fetch_link("owner")
        ledger.note = "changed"
        assert ledger.get_changes() == {"note": "changed"}  # saved state kept by insert()
    assert raw is not None
    assert isinstance(raw["owner"], DBRef)  # a reference, not an embedded copy
    assert raw["owner"].id == owner.id
    assert raw["owner"].collection == "compat_members"  # logical, in every model
    assert raw["owner"].database is None
    assert raw["amount"] == Decimal128("10.25")
    assert "note" not in raw  # keep_nulls = False
    assert raw["tenant_id"] == tenant
    assert raw["__v"] == 0
    assert found is not None
    assert found.amount == Decimal("10.25")
    assert found.day == date(2024, 2, 29)
    assert isinstance(found.owner, Member)
    assert found.owner.email == "owner@example.com"


async def test_insert_hands_beanie_the_id_in_its_own_type(
    caas_layer: DataLayer, tenant: str
) -> None:
    """The guard returns a new ObjectId as Beanie's `PydanticObjectId` (issue 16).

    Beanie's `insert()` otherwise converts the id through a new pydantic TypeAdapter per call;
    the id it keeps is the same either way, and a dict keeps the driver's own ObjectId.
    """
    async with tenant_scope(tenant, layer=caas_layer):
        member = await Member(email="typed-id@example.com").insert()
        plain = {"email": "plain-id@example.com"}
        result = await Member.get_pymongo_collection().insert_one(plain)
        chosen = await Member.get_pymongo_collection().insert_one(
            {"_id": "chosen", "email": "chosen-id@example.com"}
        )
        stored = await _raw(caas_layer, Member).find_one({"_id": member.id})
    assert type(member.id) is PydanticObjectId
    assert stored is not None and stored["_id"] == member.id
    assert type(result.inserted_id) is PydanticObjectId
    assert type(plain["_id"]) is ObjectId and plain["_id"] == result.inserted_id
    assert chosen.inserted_id == "chosen"


async def test_an_is_root_child_is_found_through_its_root(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant, layer=caas_layer):
        await Bike(wheels=2).insert()
        await Vehicle(wheels=4).insert()
        raw = await _raw(caas_layer, Vehicle).find_one({"wheels": 2})
        assert await Bike.find().count() == 1
        children = await Vehicle.find(with_children=True).to_list()
    assert raw is not None
    assert raw["_class_id"] == "Vehicle.Bike"
    assert sorted(type(v).__name__ for v in children) == ["Bike", "Vehicle"]


async def test_bulk_writer_defers_inserts(caas_layer: DataLayer, tenant: str) -> None:
    async with tenant_scope(tenant, layer=caas_layer):
        async with Member.bulk_writer() as bulk:
            await Member.insert_one(Member(email="a@example.com"), bulk_writer=bulk)
            await Member.insert_one(Member(email="b@example.com"), bulk_writer=bulk)
            assert await Member.find().count() == 0  # not written yet
        assert await Member.find().count() == 2
        assert {m.tenant_id for m in await Member.find().to_list()} == {tenant}
        member = await Member.find_one(Member.email == "a@example.com")
        assert member is not None
        member.nickname = "deferred"
        async with Member.bulk_writer() as bulk:
            await member.save(bulk_writer=bulk)
            stored = await Member.get(member.id)
            assert stored is not None
            assert stored.nickname == "anon"  # not written yet
        stored = await Member.get(member.id)
    assert stored is not None
    assert stored.nickname == "deferred"
    assert stored.version == 1
    member.nickname = "stale"  # still carries version 0
    with pytest.raises(DuplicateKeyError):  # loud, never skipped quietly
        async with tenant_scope(tenant, layer=caas_layer), Member.bulk_writer() as bulk:
            await member.save(bulk_writer=bulk)
    async with tenant_scope(tenant, layer=caas_layer):
        unchanged = await Member.get(member.id)
    assert unchanged is not None
    assert unchanged.nickname == "deferred"


async def test_ignore_revision_overwrites_the_stored_version(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant, layer=caas_layer):
        member = await Member(email="force@example.com").insert()
        stale = member.model_copy()
        member.nickname = "newer"
        await member.save()
        stale.nickname = "forced"
        await stale.replace(ignore_revision=True)  # Beanie's explicit force write
        stored = await Member.get(member.id)
    assert stored is not None
    assert stored.nickname == "forced"
    assert stored.version == stale.version == 2


async def test_save_changes_replace_and_save_keep_version_and_state_in_step(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant, layer=caas_layer):
        ledger = await Ledger(amount=Decimal("1"), day=date(2024, 1, 1)).insert()
        stale = ledger.model_copy()
        ledger.note = "first"
        await ledger.save_changes()  # Beanie's own update path
        assert ledger.version == 1
        assert not ledger.is_changed
        Ledger.events.clear()
        ledger.note = "second"
        await ledger.replace()
        assert ledger.version == 2
        ledger.note = "third"
        await ledger.save()
        assert Ledger.events == ["after replace", "before save"]
        assert ledger.version == 3
        assert not ledger.is_changed
        raw = await _raw(caas_layer, Ledger).find_one({"_id": ledger.id})
        with pytest.raises(RevisionIdWasChanged):
            await stale.replace()
        after = await _raw(caas_layer, Ledger).find_one({"_id": ledger.id})
    assert raw is not None
    assert raw["__v"] == 3
    assert raw["note"] == "third"
    assert raw["updated_at"] == ledger.updated_at
    assert after == raw  # the stale replace changed nothing


async def test_save_with_link_rule_write_saves_the_linked_documents(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant, layer=caas_layer):
        owner = Member(email="linked@example.com")
        ledger = Ledger(amount=Decimal("2"), day=date(2024, 3, 1), owner=owner)
        await ledger.save(link_rule=WriteRules.WRITE)
        assert owner.id is not None
        stored_owner = await Member.get(owner.id)
        raw = await _raw(caas_layer, Ledger).find_one({"_id": ledger.id})
    assert stored_owner is not None
    assert stored_owner.email == "linked@example.com"
    assert raw is not None
    assert raw["owner"].id == owner.id


async def test_a_view_reads_its_source_at_the_tenants_placement(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant, layer=caas_layer):
        await Member(email="shown@example.com", nickname="shown").insert()
        await Member(email="hidden@example.com", nickname="hidden").insert()
        everyone = await MemberView.find().to_list()
        one = await MemberView.find_one(MemberView.email == "shown@example.com")
        counted = await MemberView.find(MemberView.nickname == "hidden").count()
        grouped = await MemberView.find().aggregate([{"$count": "n"}]).to_list()
    assert [m.email for m in everyone] == ["shown@example.com"]
    assert one is not None
    assert one.nickname == "shown"
    assert counted == 0
    assert grouped == [{"n": 1}]


# -- 6. Our errors are also the ones Beanie and PyMongo users catch ---------------------


async def test_version_and_missing_errors_are_beanies(caas_layer: DataLayer, tenant: str) -> None:
    async with tenant_scope(tenant, layer=caas_layer):
        member = await Member(email="grace@example.com").insert()
        stale = member.model_copy()
        member.nickname = "g"
        await member.save()
        stale.nickname = "stale"
        before = await _raw(caas_layer, Member).find_one({"_id": member.id})
        with pytest.raises(RevisionIdWasChanged) as conflict:
            await stale.save()
        assert isinstance(conflict.value, VersionConflict)
        assert conflict.value.current_version == 1
        assert await _raw(caas_layer, Member).find_one({"_id": member.id}) == before
        stored = await Member.get(member.id)
        assert stored is not None
        assert stored.nickname == "g"
        ghost = Member(email="ghost@example.com")
        ghost.id = member.id.__class__()
        with pytest.raises(DocumentNotFound) as missing:
            await ghost.replace()
        assert isinstance(missing.value, NotFoundError)


def _raw(layer: DataLayer, document_type: type[BaseDocument]) -> AsyncCollection:
    """The physical collection the running scope routes `document_type` to, unguarded."""
    database, name = document_type.get_pymongo_collection().full_name.split(".", 1)
    return layer.client[database][name]


# -- 5. Links in every model: logical references, lookups in the tenant only ---------------


@pytest.mark.parametrize("model", list(MODEL_TIERS))
async def test_a_join_built_from_beanies_collection_name_stays_in_the_tenant(
    caas_layer: DataLayer, model: str, model_tenant: str
) -> None:
    """Beanie builds `$lookup.from` from `get_pymongo_collection().name` (link fetching)."""
    neighbour = new_tenant_id(f"{model}-n")
    await caas_layer.tenants.provision(neighbour, tier=MODEL_TIERS[model])
    async with tenant_scope(neighbour, layer=caas_layer):
        await Member(email="same@example.com").insert()
    async with tenant_scope(model_tenant, layer=caas_layer):
        collection = Member.get_pymongo_collection()
        own_physical = collection.full_name.split(".", 1)[1]
        await Member(email="same@example.com").insert()
        joined = {}
        for name in (collection.name, own_physical):  # the logical name, and the scope's own
            join = {"from": name, "localField": "email", "foreignField": "email", "as": "same"}
            joined[name] = await Member.aggregate([{"$lookup": join}]).to_list()
    assert collection.name == "compat_members"  # Beanie's name, in every model
    for rows in joined.values():
        assert [[m["tenant_id"] for m in row["same"]] for row in rows] == [[model_tenant]]


@pytest.mark.parametrize("model", list(MODEL_TIERS))
async def test_a_reference_never_points_outside_the_tenant(
    caas_layer: DataLayer, model: str, model_tenant: str
) -> None:
    neighbour = new_tenant_id(f"{model}-n")
    await caas_layer.tenants.provision(neighbour, tier=MODEL_TIERS[model])
    async with tenant_scope(neighbour, layer=caas_layer):
        theirs = await Member(email="neighbour@example.com").insert()
        their_database, their_name = Member.get_pymongo_collection().full_name.split(".", 1)
    day = datetime(2024, 1, 1)
    async with tenant_scope(model_tenant, layer=caas_layer):
        own_name = Member.get_pymongo_collection().full_name.split(".", 1)[1]
        ledgers = Ledger.get_pymongo_collection()
        # The scope's own physical name is stored as the logical one (in both forms).
        mine = await Member(email="mine@example.com").insert()
        written = await ledgers.insert_one(
            {"amount": Decimal128("1"), "day": day, "owner": DBRef(own_name, mine.id)}
        )
        as_document = {"$ref": own_name, "$id": mine.id}
        await ledgers.update_one({"_id": written.inserted_id}, {"$set": {"owner": as_document}})
        # A replacement too: the guard encodes it and walks it when its bytes hold `$ref`.
        current = await ledgers.find_one({"_id": written.inserted_id})
        assert current is not None
        await ledgers.replace_one(
            {"_id": written.inserted_id}, {**current, "owner": DBRef(own_name, mine.id)}
        )
        raw = await _raw(caas_layer, Ledger).find_one({"_id": written.inserted_id})
        assert raw is not None and raw["__v"] == current["__v"] + 1  # the replacement landed
        # A platform collection has one name for every tenant: a reference may name it.
        platform = spec_of(caas_layer.registry.in_area(Area.PLATFORM)[0]).name
        to_platform = await ledgers.insert_one({"day": day, "owner": DBRef(platform, 1)})
        kept = await _raw(caas_layer, Ledger).find_one({"_id": to_platform.inserted_id})
        assert kept is not None
        assert kept["owner"] == DBRef(platform, 1)
        found = await Ledger.find_one(Ledger.owner == DBRef(own_name, mine.id))  # a filter too
        if found is not None:
            await found.fetch_all_links()
        outside = [
            DBRef("compat_nowhere", ObjectId()),  # no such collection in the layer
            DBRef("compat_members", theirs.id, database=their_database),  # a database
        ]
        if their_name != "compat_members":  # a collection set: the neighbour's own name
            outside.append(DBRef(their_name, theirs.id))
        for ref in outside:
            with pytest.raises(UnsafeOperation):
                await ledgers.insert_one({"amount": Decimal128("1"), "day": day, "owner": ref})
            with pytest.raises(UnsafeOperation):
                await ledgers.update_one({"_id": written.inserted_id}, {"$set": {"owner": ref}})
            with pytest.raises(UnsafeOperation):
                await ledgers.find_one({"owner": ref})
            with pytest.raises(UnsafeOperation):
                await ledgers.bulk_write([InsertOne({"day": day, "owner": ref})])
            with pytest.raises(UnsafeOperation):  # deep in a replacement
                await ledgers.replace_one(
                    {"_id": written.inserted_id}, {**raw, "notes": [{"owner": ref}]}
                )
            with pytest.raises(UnsafeOperation):
                await ledgers.update_one(
                    {"_id": written.inserted_id},
                    {"$set": {"owner": {"$ref": ref.collection, "$id": ref.id, "$db": "x"}}},
                )
        if their_name != "compat_members":
            with pytest.raises(UnsafeOperation):  # a join reaches only the tenant's own
                await Member.aggregate(
                    [{"$lookup": {"from": their_name, "pipeline": [], "as": "x"}}]
                ).to_list()
        else:  # one name for every tenant: a reference resolves in the caller's tenant only
            stray_id = ObjectId()
            await ledgers.insert_one(
                {"_id": stray_id, "amount": Decimal128("1"), "day": day,
                 "owner": DBRef("compat_members", theirs.id)}
            )  # fmt: skip
            stray = await Ledger.get(stray_id, fetch_links=True)
            assert stray is not None
            assert not isinstance(stray.owner, Member)  # their member is not reachable
        unchanged = await _raw(caas_layer, Ledger).find_one({"_id": written.inserted_id})
    assert raw is not None
    assert raw["owner"] == DBRef("compat_members", mine.id)
    assert unchanged == raw  # every refused write changed nothing
    assert found is not None
    assert isinstance(found.owner, Member)
    assert found.owner.email == "mine@example.com"
    async with tenant_scope(neighbour, layer=caas_layer):
        assert await Ledger.find().count() == 0


async def test_references_survive_a_move_between_models(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    async with tenant_scope(pro_tenant, layer=caas_layer):
        owner = await Member(email="mover@example.com").insert()
        ledger = await Ledger(amount=Decimal("5"), day=date(2024, 5, 1), owner=owner).insert()
    for tier in (MODEL_TIERS["enterprise"], MODEL_TIERS["shared"]):
        await caas_layer.tenants.move(pro_tenant, to=tier, fence_grace=0)
        async with tenant_scope(pro_tenant, layer=caas_layer):
            found = await Ledger.find_one(Ledger.owner == owner.to_ref())
            if found is not None:
                await found.fetch_link("owner")
            raw = await _raw(caas_layer, Ledger).find_one({"_id": ledger.id})
        assert raw is not None
        assert raw["owner"] == DBRef("compat_members", owner.id)
        assert found is not None
        assert found.id == ledger.id
        assert isinstance(found.owner, Member)
        assert found.owner.email == "mover@example.com"
