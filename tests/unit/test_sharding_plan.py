"""The sharding plan, checked against MongoDB's documented rules (no mongos runs here)."""

from __future__ import annotations

from bson import MaxKey, MinKey

from caas_data.documents import ALL_DOCUMENTS
from caas_data.documents.base import Area
from caas_data.documents.registry import spec_of
from caas_data.layer import DataLayer
from caas_data.services.sharding import index_keys, sharding_plan


class _Layer:
    """What the plan reads of a layer: its prefix and registry."""

    prefix = "caas"

    def __init__(self) -> None:
        from caas_data.documents.registry import DocumentRegistry

        self.registry = DocumentRegistry(ALL_DOCUMENTS)


def _plan(**kwargs: object):
    return sharding_plan(_Layer(), **kwargs)  # type: ignore[arg-type]


def test_every_key_leads_with_tenant_id_prefixes_an_index_and_keeps_unique_indexes() -> None:
    plan = _plan()
    by_name = {spec_of(d).name: d for d in ALL_DOCUMENTS if d.caas_area is Area.TENANT}
    assert {c.namespace.split(".", 1)[1] for c in plan.collections} | {
        n.split(".", 1)[1] for n in plan.unsharded
    } == set(by_name)
    for collection in plan.collections:
        names = list(collection.key)
        assert names[0] == "tenant_id" and set(collection.key.values()) == {1}
        indexes = index_keys(by_name[collection.namespace.split(".", 1)[1]])
        supporting = [
            key for key, _ in indexes if [n for n, d in key[: len(names)] if d == 1] == names
        ]
        assert supporting or collection.create_index is not None, collection
        for key, unique in indexes:
            if unique:  # MongoDB: a unique index must have the shard key as a prefix
                assert [n for n, _ in key[: len(names)]] == names, (collection.namespace, key)


def test_messages_keep_a_conversation_together_and_why() -> None:
    plan = _plan()
    messages = next(c for c in plan.collections if c.namespace == "caas_shared.messages")
    assert messages.key == {"tenant_id": 1, "conversation_id": 1}
    assert "unique" in messages.why
    commands = plan.commands()
    assert commands[0] == {"enableSharding": "caas_shared"}
    assert {"shardCollection": "caas_shared.messages", "key": messages.key} in commands
    assert any("no sharded cluster" in note for note in plan.notes)


def test_a_large_tenant_is_pinned_to_a_zone_in_every_collection() -> None:
    plan = _plan(zones={"bigco": "zone-a"})
    assert len(plan.zone_ranges) == len(plan.collections)
    for zone_range in plan.zone_ranges:
        low, high = zone_range["min"], zone_range["max"]
        assert zone_range["zone"] == "zone-a" and low["tenant_id"] == "bigco"
        assert list(low) == list(high)
        if len(low) > 1:
            assert all(isinstance(v, MinKey) for v in list(low.values())[1:])
            assert all(isinstance(v, MaxKey) for v in list(high.values())[1:])
        else:  # exclusive upper bound: the next string, nothing of another tenant between
            assert high["tenant_id"] == "bigco\x00"
    assert plan.commands()[-len(plan.zone_ranges) :] == list(plan.zone_ranges)


def test_the_layer_exposes_the_plan() -> None:
    assert DataLayer.sharding_plan.__doc__ and "mongos" in DataLayer.sharding_plan.__doc__
