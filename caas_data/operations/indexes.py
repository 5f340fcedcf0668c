"""`indexes sync`: every placement gets the indexes its classes declare, and nothing else.

Placements: the platform, billing and analytics databases once, the shared collections once,
then each Pro and Enterprise placement. Missing indexes are created; indexes nobody declared
are reported, and dropped only when asked (`drop_unexpected=True`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from caas_data.documents.base import BaseDocument
from caas_data.documents.indexes import declared_indexes
from caas_data.documents.registry import spec_of
from caas_data.driver_errors import translate_driver_errors
from caas_data.operations._common import (
    OUTSIDE_AREAS,
    live_clients,
    placement_of,
    require_operator_scope,
    tenant_classes,
)
from caas_data.tenancy.tiers import IsolationModel

if TYPE_CHECKING:
    from caas_data.layer import DataLayer

__all__ = ["IndexReport", "sync_indexes"]


@dataclass(slots=True)
class IndexReport:
    """What `sync_indexes` found and did at one collection."""

    namespace: str
    created: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


async def sync_indexes(layer: DataLayer, *, drop_unexpected: bool = False) -> list[IndexReport]:
    """Create missing indexes at every placement; report (or drop) undeclared ones.

    Returns a report for each collection where something was missing or unexpected.

    Raises:
        TenantMismatch: called inside a tenant scope (an operator operation).
    """
    require_operator_scope("indexes sync", "*")
    targets: list[tuple[str, str, type[BaseDocument]]] = [
        (layer.database_name(area), spec_of(d).name, d)
        for area in OUTSIDE_AREAS
        for d in layer.registry.in_area(area)
    ]
    targets += [(f"{layer.prefix}_shared", spec_of(d).name, d) for d in tenant_classes(layer)]
    for client in await live_clients(layer):
        placement = placement_of(client)
        if placement.isolation is IsolationModel.SHARED:
            continue
        targets += [
            (placement.database, placement.collection_name(spec_of(d).name), d)
            for d in tenant_classes(layer)
        ]
    reports = []
    for database, name, document_type in targets:
        report = await _sync_one(layer, database, name, document_type, drop_unexpected)
        if report.created or report.unexpected:
            reports.append(report)
    return reports


async def _sync_one(
    layer: DataLayer,
    database: str,
    name: str,
    document_type: type[BaseDocument],
    drop_unexpected: bool,
) -> IndexReport:
    report = IndexReport(f"{database}.{name}")
    collection = layer.unguarded_collection(
        database, name, why="index DDL at every placement is the operator's"
    )
    declared = {model.document["name"]: model for model in declared_indexes(document_type)}
    with translate_driver_errors(document_type=document_type):
        existing = {index["name"] async for index in await collection.list_indexes()}
        missing = [model for index_name, model in declared.items() if index_name not in existing]
        if missing:
            await collection.create_indexes(missing)
            report.created = sorted(model.document["name"] for model in missing)
        report.unexpected = sorted(existing - set(declared) - {"_id_"})
        if drop_unexpected:
            for index_name in report.unexpected:
                await collection.drop_index(index_name)
            report.dropped = list(report.unexpected)
    return report
