"""Every shipped document follows the schema index's rules (checked on the declarations)."""

from __future__ import annotations

import pytest
from pymongo import IndexModel

from caas_data.documents import ALL_DOCUMENTS, Area, BaseDocument
from caas_data.documents.indexes import declared_indexes
from caas_data.documents.registry import DocumentRegistry, spec_of

HIGH_VOLUME = {"messages", "read_receipts", "reactions", "files", "events", "usage_records",
               "audit_logs"}  # fmt: skip

TENANT_KEYED = [d for d in ALL_DOCUMENTS if spec_of(d).tenant_keyed]


def keys(index: IndexModel) -> list[str]:
    return list(index.document["key"].keys())


def test_every_document_is_registered_once() -> None:
    registry = DocumentRegistry(ALL_DOCUMENTS)  # raises on two classes claiming one collection
    assert len(registry.all()) == len(ALL_DOCUMENTS)


@pytest.mark.parametrize("document_type", TENANT_KEYED, ids=lambda d: d.__name__)
def test_tenant_id_leads_every_compound_index(document_type: type[BaseDocument]) -> None:
    indexes = declared_indexes(document_type)
    assert any(keys(i)[0] == "tenant_id" for i in indexes), "no index leads with tenant_id"
    for index in indexes:
        if len(keys(index)) > 1:
            assert keys(index)[0] == "tenant_id", keys(index)


@pytest.mark.parametrize(
    "document_type",
    [d for d in ALL_DOCUMENTS if spec_of(d).name in HIGH_VOLUME],
    ids=lambda d: d.__name__,
)
def test_high_volume_collections_have_the_time_index(document_type: type[BaseDocument]) -> None:
    pairs = [list(i.document["key"].items()) for i in declared_indexes(document_type)]
    assert [("tenant_id", 1), ("created_at", -1)] in pairs


def test_tenant_area_documents_carry_tenant_id() -> None:
    for document_type in ALL_DOCUMENTS:
        if spec_of(document_type).area is Area.TENANT:
            assert spec_of(document_type).tenant_keyed, document_type.__name__
