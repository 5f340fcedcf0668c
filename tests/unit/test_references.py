"""References (DBRefs) name a logical collection of the tenant, or are refused."""

from typing import Any

import bson
import pytest
from bson import DBRef, ObjectId
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.common import validate_ok_for_replace

from caas_data import UnsafeOperation
from caas_data.tenancy.encoded import encode_new_document, encode_replacement, raw_codec_options
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


# -- a new document is checked in its encoded bytes (tenancy/encoded.py) -------------------

OPTIONS = CodecOptions(tz_aware=True, uuid_representation=UuidRepresentation.STANDARD)
RAW_OPTIONS = raw_codec_options(OPTIONS)


class CountingCheck:
    """The reference check, counting the documents it was asked to walk."""

    def __init__(self) -> None:
        self.walked = 0

    def __call__(self, document: dict[str, Any]) -> dict[str, Any]:
        self.walked += 1
        checked: dict[str, Any] = logical_references(document, logical)
        return checked


def encode(document: dict[str, Any]) -> tuple[RawBSONDocument, Any, int]:
    check = CountingCheck()
    raw, new_id = encode_new_document(document, OPTIONS, RAW_OPTIONS, check)
    return raw, new_id, check.walked


def test_a_document_without_ref_bytes_is_sent_unwalked_with_an_id() -> None:
    document = {"name": "x", "price": "$5", "tags": [{"k": "v"}], "n": 1}
    raw, new_id, walked = encode(document)
    assert walked == 0
    assert type(raw) is RawBSONDocument  # the driver's isinstance checks take the fast path
    assert isinstance(new_id, ObjectId) and document["_id"] == new_id
    assert bson.decode(raw.raw, OPTIONS) == document


@pytest.mark.parametrize(
    "owner",
    [DBRef("acme_users", OID), {"$ref": "acme_users", "$id": OID}],
    ids=["dbref", "sub-document"],
)
def test_a_nested_reference_is_walked_and_stored_by_its_logical_name(owner: object) -> None:
    raw, _, walked = encode({"_id": 7, "items": [{"deep": [{"owner": owner}]}]})
    assert walked == 1
    assert bson.decode(raw.raw)["items"][0]["deep"][0]["owner"] == DBRef("users", OID)


def test_a_value_ending_in_ref_is_a_false_alarm_that_changes_nothing() -> None:
    document = {"_id": 1, "note": "costs $ref"}  # a BSON string ends in NUL, like a key
    raw, _, walked = encode(document)
    assert walked == 1
    assert bson.decode(raw.raw) == document


@pytest.mark.parametrize(
    "owner", [DBRef("other_users", OID), {"$ref": "users", "$id": OID, "$db": "other"}]
)
def test_a_reference_outside_the_tenant_is_refused_before_any_bytes_leave(owner: object) -> None:
    with pytest.raises(UnsafeOperation):
        encode({"list": [1, {"owner": owner}]})


def test_a_replacement_is_encoded_as_it_is_and_walked_only_for_ref_bytes() -> None:
    check = CountingCheck()
    plain = {"_id": 3, "name": "x", "items": [{"k": "v"}], "__v": 2}
    raw = encode_replacement(dict(plain), OPTIONS, RAW_OPTIONS, check)
    assert check.walked == 0 and bson.decode(raw.raw, OPTIONS) == plain
    no_id = {"name": "x"}
    assert bson.decode(encode_replacement(no_id, OPTIONS, RAW_OPTIONS, check).raw) == {"name": "x"}
    assert no_id == {"name": "x"}  # a replacement gets no `_id` of its own
    raw = encode_replacement({"owner": DBRef("acme_users", OID)}, OPTIONS, RAW_OPTIONS, check)
    assert check.walked == 1
    assert bson.decode(raw.raw) == {"owner": DBRef("users", OID)}


def test_the_driver_checks_a_sent_replacement_without_decoding_it() -> None:
    # PyMongo asks a replacement whether it is empty; a plain RawBSONDocument decodes itself
    # whole to answer (more than the walk the bytes save).
    sent = encode_replacement({"items": [{"k": 1}] * 20}, OPTIONS, RAW_OPTIONS, CountingCheck())
    validate_ok_for_replace(sent)
    assert sent._RawBSONDocument__inflated_doc is None  # type: ignore[attr-defined]
    assert sent and not encode_replacement({}, OPTIONS, RAW_OPTIONS, CountingCheck())
    assert isinstance(sent, RawBSONDocument) and bson.decode(sent.raw)["items"][0] == {"k": 1}
