"""The guard's rules as pure functions: what a driver call sends after the guard."""

from datetime import UTC, datetime

import pytest

from caas_data import TenantMismatch, UnsafeOperation
from caas_data.tenancy.pipeline_rules import LookupTarget, guard_pipeline
from caas_data.tenancy.rules import (
    CollectionRules,
    guard_filter,
    guard_new_document,
    guard_replacement,
    guard_update,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ACME = CollectionRules(tenant_id="acme", soft_delete=True)
PLAIN = CollectionRules(tenant_id="acme")
SYSTEM = CollectionRules(tenant_id=None)


def resolve(name: str) -> LookupTarget:
    known = {"messages": "acme_messages", "users": "acme_users"}
    if name not in known:
        raise UnsafeOperation(f"unknown {name}")
    return LookupTarget(known[name], ACME)


class TestFilters:
    def test_tenant_is_merged_at_the_top_level(self) -> None:
        assert guard_filter({"_id": 1}, PLAIN) == {"tenant_id": "acme", "_id": 1}

    def test_no_and_wrapping_for_id_lookups(self) -> None:
        assert "$and" not in guard_filter({"_id": 1}, ACME)

    def test_empty_filter_gets_the_tenant(self) -> None:
        assert guard_filter(None, PLAIN) == {"tenant_id": "acme"}

    def test_soft_deleted_are_excluded_unless_included(self) -> None:
        assert guard_filter({}, ACME)["deleted_at"] is None
        assert "deleted_at" not in guard_filter({}, ACME, include_deleted=True)

    def test_explicit_deleted_condition_is_respected(self) -> None:
        query = guard_filter({"deleted_at": {"$ne": None}}, ACME)
        assert query["deleted_at"] == {"$ne": None}

    @pytest.mark.parametrize("same", ["acme", {"$eq": "acme"}, {"$in": ["acme"]}])
    def test_naming_the_own_tenant_is_fine(self, same: object) -> None:
        assert guard_filter({"tenant_id": same}, PLAIN) == {"tenant_id": "acme"}

    @pytest.mark.parametrize(
        "query",
        [
            {"tenant_id": "beta"},
            {"tenant_id": {"$ne": "acme"}},
            {"tenant_id": {"$in": ["acme", "beta"]}},
            {"tenant_id": {"$exists": True}},
            {"$or": [{"tenant_id": "beta"}, {"x": 1}]},
            {"$and": [{"$nor": [{"tenant_id": "beta"}]}]},
        ],
    )
    def test_naming_another_tenant_raises(self, query: dict) -> None:
        with pytest.raises(TenantMismatch):
            guard_filter(query, PLAIN)

    def test_system_scope_adds_no_tenant(self) -> None:
        assert guard_filter({"tenant_id": "beta"}, SYSTEM) == {"tenant_id": "beta"}

    def test_non_mapping_filter_is_refused(self) -> None:
        with pytest.raises(UnsafeOperation):
            guard_filter("acme", PLAIN)  # type: ignore[arg-type]


class TestWrites:
    def test_new_documents_are_stamped(self) -> None:
        doc = guard_new_document({"a": 1}, PLAIN, now=NOW)
        assert doc == {
            "a": 1, "tenant_id": "acme", "schema_version": 1, "created_at": NOW,
            "updated_at": NOW, "__v": 0,
        }  # fmt: skip

    def test_new_document_of_another_tenant_raises(self) -> None:
        with pytest.raises(TenantMismatch):
            guard_new_document({"tenant_id": "beta"}, PLAIN, now=NOW)

    def test_system_scope_insert_needs_a_tenant(self) -> None:
        with pytest.raises(TenantMismatch):
            guard_new_document({"a": 1}, SYSTEM, now=NOW)

    def test_updates_bump_version_and_timestamp(self) -> None:
        guarded = guard_update({"$set": {"name": "x"}}, PLAIN, now=NOW)
        assert guarded.update == {"$set": {"name": "x", "updated_at": NOW}, "$inc": {"__v": 1}}
        assert guarded.conditions == {}

    def test_upserts_also_set_created_at(self) -> None:
        update = guard_update({"$set": {"a": 1}}, PLAIN, now=NOW, upsert=True).update
        assert update["$setOnInsert"] == {"created_at": NOW}

    def test_set_version_makes_a_single_update_conditional_on_it(self) -> None:
        guarded = guard_update({"$set": {"__v": 7, "a": 1}}, PLAIN, now=NOW)
        assert guarded.conditions == {"__v": 7}
        assert guarded.update["$set"]["__v"] == 8
        assert "$inc" not in guarded.update
        assert guarded.filter({"tenant_id": "acme", "_id": 1}) == {
            "tenant_id": "acme",
            "_id": 1,
            "__v": 7,
        }
        with pytest.raises(UnsafeOperation):
            guarded.filter({"_id": 1, "__v": 3})  # contradicts the version it names

    @pytest.mark.parametrize(
        "update",
        [
            {"$inc": {"__v": -5}},
            {"$set": {"__v": -1}},
            {"$set": {"__v": True}},
            {"$min": {"__v": 0}},
            {"$max": {"created_at": NOW}},
            {"$unset": {"__v": ""}},
            {"$rename": {"__v": "old"}},
            {"$rename": {"x": "created_at"}},
            {"$currentDate": {"created_at": True}},
            {"$set": {"deleted_at": NOW}},
            {"$set": {"deleted_by": "someone"}},
            {"$inc": {"schema_version": 1}},
            {"$set": {"created_at.x": 1}},
            {"$unset": {"updated_at": ""}},
        ],
    )
    def test_layer_owned_fields_are_refused(self, update: dict) -> None:
        with pytest.raises(UnsafeOperation):
            guard_update(update, ACME, now=NOW)

    def test_version_set_on_many_documents_is_refused(self) -> None:
        with pytest.raises(UnsafeOperation):
            guard_update({"$set": {"__v": 1}}, PLAIN, now=NOW, single=False)

    def test_whole_document_set_keeps_the_layers_fields(self) -> None:
        guarded = guard_update(
            {"$set": {"a": 1, "created_at": NOW, "schema_version": 1, "updated_at": 0}},
            ACME,
            now=NOW,
            upsert=True,
        )
        assert guarded.update == {
            "$set": {"a": 1, "updated_at": NOW},
            "$setOnInsert": {"created_at": NOW, "schema_version": 1},
            "$inc": {"__v": 1},
        }
        assert guarded.conditions == {"created_at": NOW, "schema_version": {"$in": [1, None]}}
        pinned = guard_update({"$set": {"created_at": NOW, "a": 1}}, ACME, now=NOW)
        assert pinned.conditions == {"created_at": NOW}  # changes only a document stored so
        assert "created_at" not in pinned.update["$set"]
        clearing = guard_update({"$set": {"deleted_at": None}}, ACME, now=NOW)
        assert clearing.conditions == {"deleted_at": None}  # live documents only

    def test_privileged_writes_may_set_owned_fields(self) -> None:
        rules = CollectionRules(tenant_id="acme", soft_delete=True, privileged=True)
        guarded = guard_update({"$set": {"deleted_at": NOW}}, rules, now=NOW)
        assert guarded.update["$set"]["deleted_at"] == NOW
        with pytest.raises(TenantMismatch):
            guard_update({"$set": {"tenant_id": "beta"}}, rules, now=NOW)

    @pytest.mark.parametrize(
        "update",
        [
            {"$set": {"tenant_id": "beta"}},
            {"$unset": {"tenant_id": ""}},
            {"$rename": {"tenant_id": "old"}},
            {"$rename": {"x": "tenant_id"}},
            {"$set": {"tenant_id.x": 1}},
            {"$setOnInsert": {"tenant_id": "beta"}},
        ],
    )
    def test_updates_that_move_tenants_raise(self, update: dict) -> None:
        with pytest.raises(TenantMismatch):
            guard_update(update, PLAIN, now=NOW)

    def test_setting_the_same_tenant_is_harmless(self) -> None:
        guard_update({"$set": {"tenant_id": "acme", "a": 1}}, PLAIN, now=NOW)

    def test_unknown_update_operator_is_refused(self) -> None:
        with pytest.raises(UnsafeOperation):
            guard_update({"$where": "1"}, PLAIN, now=NOW)

    def test_update_pipelines_are_checked_and_versioned(self) -> None:
        stages = guard_update([{"$set": {"a": 1}}], PLAIN, now=NOW).update
        assert stages[-1]["$set"]["updated_at"] == NOW
        with pytest.raises(UnsafeOperation):
            guard_update([{"$set": {"__v": 0}}], PLAIN, now=NOW)
        with pytest.raises(TenantMismatch):
            guard_update([{"$set": {"tenant_id": "beta"}}], PLAIN, now=NOW)
        with pytest.raises(UnsafeOperation):
            guard_update([{"$replaceWith": {"a": 1}}], PLAIN, now=NOW)

    def test_replacement_is_conditional_on_its_version(self) -> None:
        query, new = guard_replacement({"_id": 1, "tenant_id": "acme"}, {"__v": 3}, PLAIN, now=NOW)
        assert query["__v"] == 3
        assert new["__v"] == 4 and new["tenant_id"] == "acme" and new["updated_at"] == NOW

    def test_replacement_cannot_rewind_the_version_through_its_filter(self) -> None:
        with pytest.raises(UnsafeOperation):
            guard_replacement({"_id": 1, "__v": {"$gte": 0}}, {"__v": 0}, PLAIN, now=NOW)

    def test_replacement_is_conditional_on_the_layers_other_fields(self) -> None:
        query, _ = guard_replacement(
            {"_id": 1, "tenant_id": "acme"},
            {"__v": 3, "created_at": NOW, "schema_version": 1},
            ACME,
            now=NOW,
        )
        assert "created_at" not in query and query["schema_version"] == {"$in": [1, None]}
        assert query["deleted_at"] is None and query["deleted_by"] is None

    @pytest.mark.parametrize("key", ["$set", "$inc", "$"])
    def test_replacement_with_an_operator_key_is_refused(self, key: str) -> None:
        with pytest.raises(UnsafeOperation, match="update operators"):
            guard_replacement({"_id": 1}, {"__v": 0, "a": 1, key: {"a": 2}}, PLAIN, now=NOW)
        _, new = guard_replacement({"_id": 1}, {"__v": 0, "a$": 1}, PLAIN, now=NOW)
        assert new["a$"] == 1  # a `$` elsewhere in a name is no operator

    def test_replacement_without_version_is_refused(self) -> None:
        with pytest.raises(UnsafeOperation, match="__v"):
            guard_replacement({"_id": 1}, {"a": 1}, PLAIN, now=NOW)


class TestPipelines:
    def test_tenant_match_is_put_first(self) -> None:
        stages = guard_pipeline([{"$group": {"_id": 1}}], PLAIN, resolve)
        assert stages[0] == {"$match": {"tenant_id": "acme"}}

    def test_leading_match_is_merged_so_text_stays_first(self) -> None:
        stages = guard_pipeline([{"$match": {"$text": {"$search": "x"}}}], PLAIN, resolve)
        assert stages == [{"$match": {"tenant_id": "acme", "$text": {"$search": "x"}}}]

    def test_lookup_is_rewritten_and_filtered(self) -> None:
        stages = guard_pipeline(
            [{"$lookup": {"from": "messages", "localField": "a", "foreignField": "b", "as": "m"}}],
            PLAIN,
            resolve,
        )
        lookup = stages[1]["$lookup"]
        assert lookup["from"] == "acme_messages"
        assert lookup["pipeline"][0] == {"$match": {"tenant_id": "acme", "deleted_at": None}}

    def test_nested_joins_in_facets_and_subpipelines_are_rewritten(self) -> None:
        stages = guard_pipeline(
            [
                {
                    "$facet": {
                        "a": [
                            {
                                "$lookup": {
                                    "from": "users",
                                    "pipeline": [{"$unionWith": {"coll": "messages"}}],
                                    "as": "u",
                                }
                            }
                        ]
                    }
                }
            ],
            PLAIN,
            resolve,
        )
        lookup = stages[1]["$facet"]["a"][0]["$lookup"]
        assert lookup["from"] == "acme_users"
        union = lookup["pipeline"][1]["$unionWith"]
        assert union["coll"] == "acme_messages"
        assert union["pipeline"][0]["$match"]["tenant_id"] == "acme"

    def test_graph_lookup_is_restricted(self) -> None:
        stages = guard_pipeline(
            [
                {
                    "$graphLookup": {
                        "from": "users",
                        "startWith": "$a",
                        "connectFromField": "a",
                        "connectToField": "b",
                        "as": "g",
                    }
                }
            ],
            PLAIN,
            resolve,
        )
        graph = stages[1]["$graphLookup"]
        assert graph["from"] == "acme_users"
        assert graph["restrictSearchWithMatch"]["tenant_id"] == "acme"

    @pytest.mark.parametrize(
        "stage",
        [
            {"$out": "x"},
            {"$merge": {"into": "x"}},
            {"$lookup": {"from": "secrets", "as": "s", "pipeline": []}},
            {"$lookup": {"from": {"db": "other", "coll": "x"}, "as": "s", "pipeline": []}},
            {"$unionWith": "secrets"},
            {"$collStats": {}},
            {"$currentOp": {}},
            {"$changeStream": {}},
            {"$facet": {"a": [{"$out": "x"}]}},
        ],
    )
    def test_unsafe_stages_are_refused(self, stage: dict) -> None:
        with pytest.raises(UnsafeOperation):
            guard_pipeline([{"$match": {}}, stage], PLAIN, resolve)

    def test_match_naming_another_tenant_raises(self) -> None:
        with pytest.raises(TenantMismatch):
            guard_pipeline([{"$sort": {"a": 1}}, {"$match": {"tenant_id": "beta"}}], PLAIN, resolve)
