"""References (DBRefs) name a logical collection of the tenant, or are refused."""

import pytest
from bson import DBRef, ObjectId

from caas_data import UnsafeOperation
from caas_data.tenancy.references import logical_references

OID = ObjectId()


def logical(name: str) -> str:
    """The scope `acme` with a collection set: `acme_users` is its own `users`."""
    known = {"users": "users", "acme_users": "users"}
    if name not in known:
        raise UnsafeOperation(f"unknown {name}")
    return known[name]


def test_the_scopes_physical_name_is_stored_as_the_logical_one() -> None:
    document = {"owner": DBRef("acme_users", OID, note="kept"), "n": 1}
    assert logical_references(document, logical) == {
        "owner": DBRef("users", OID, note="kept"),
        "n": 1,
    }


def test_nested_references_and_the_sub_document_form_are_mapped() -> None:
    document = {"a": [{"b": DBRef("acme_users", OID)}], "c": {"$ref": "acme_users", "$id": OID}}
    assert logical_references(document, logical) == {
        "a": [{"b": DBRef("users", OID)}],
        "c": {"$ref": "users", "$id": OID},
    }


def test_a_value_without_references_is_returned_as_it_is() -> None:
    document = {"a": [1, {"b": "x"}], "owner": DBRef("users", OID)}
    assert logical_references(document, logical) is document


@pytest.mark.parametrize(
    "value",
    [
        DBRef("other_users", OID),
        DBRef("users", OID, database="other"),
        {"$ref": "users", "$id": OID, "$db": "other"},
        {"$ref": "other_users", "$id": OID},
        [DBRef("nowhere", OID)],
    ],
)
def test_a_reference_outside_the_tenant_is_refused(value: object) -> None:
    with pytest.raises(UnsafeOperation):
        logical_references({"owner": value}, logical)


def test_a_deep_value_is_refused_not_followed_forever() -> None:
    document: dict[str, object] = {}
    for _ in range(150):
        document = {"d": document}
    with pytest.raises(UnsafeOperation):
        logical_references(document, logical)
