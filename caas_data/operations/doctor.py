"""`doctor`: what an operator checks first when something is wrong with the cluster."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from caas_data.documents.registry import spec_of
from caas_data.driver_errors import translate_driver_errors
from caas_data.errors import CaasDataError
from caas_data.operations._common import (
    live_clients,
    placement_of,
    require_operator_scope,
    tenant_classes,
)
from caas_data.tenancy.tiers import IsolationModel, Placement

if TYPE_CHECKING:
    from caas_data.layer import DataLayer

__all__ = ["NAMESPACE_BUDGET", "DoctorReport", "doctor"]

NAMESPACE_BUDGET = 10_000
"""Collections (and their indexes' files) one cluster carries comfortably; past it, warn."""


@dataclass(slots=True)
class DoctorReport:
    """The checks, and `problems`: one line per thing an operator should look at."""

    connected: bool
    server_version: str | None = None
    replica_set: str | None = None
    transactions: bool = False
    namespaces: int = 0
    namespace_budget: int = NAMESPACE_BUDGET
    tenants: int = 0
    misplaced: dict[str, str] = field(default_factory=dict)
    orphans: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing needs a look."""
        return self.connected and not self.problems


async def doctor(layer: DataLayer) -> DoctorReport:
    """Connectivity, server, transactions, namespace count, directory and orphan checks."""
    require_operator_scope("doctor", "*")
    report = DoctorReport(connected=False)
    try:
        with translate_driver_errors():
            await layer.client.admin.command("ping")
            info = await layer.client.admin.command("buildInfo")
            hello = await layer.client.admin.command("hello")
    except CaasDataError as exc:
        report.problems.append(f"cannot reach the server: {exc}")
        return report
    report.connected = True
    report.server_version = str(info.get("version"))
    report.replica_set = hello.get("setName")
    report.transactions = bool(report.replica_set) or hello.get("msg") == "isdbgrid"
    if not report.transactions:
        report.problems.append("no replica set: transactions and change streams are unavailable")
    await _count_namespaces(layer, report)
    clients = await live_clients(layer)
    report.tenants = len(clients)
    await _check_placements(layer, report, clients)
    await _find_orphans(layer, report, {c.tenant_id for c in clients})
    return report


async def _count_namespaces(layer: DataLayer, report: DoctorReport) -> None:
    with translate_driver_errors():
        names = await layer.client.list_database_names()
        for name in names:
            if name.startswith(f"{layer.prefix}_"):
                database = layer.unguarded_database(name, why="doctor counts namespaces")
                report.namespaces += len(await database.list_collection_names())
    if report.namespaces > NAMESPACE_BUDGET:
        report.problems.append(
            f"{report.namespaces} collections exceed the budget of {NAMESPACE_BUDGET}: "
            "move Pro tenants to the shared model or to another cluster"
        )


async def _check_placements(layer: DataLayer, report: DoctorReport, clients: list[Any]) -> None:
    """A live entry must point where its tier says, and its collections must exist there."""
    users = spec_of(tenant_classes(layer)[0]).name
    with translate_driver_errors():
        databases = set(await layer.client.list_database_names())
        shared = layer.unguarded_database(f"{layer.prefix}_shared", why="doctor lists placements")
        shared_names = set(await shared.list_collection_names())
    for client in clients:
        recorded = placement_of(client)
        expected = Placement.for_tier(client.tenant_id, client.tier, database_prefix=layer.prefix)
        problem = None
        if (recorded.database, recorded.collection_prefix) != (
            expected.database,
            expected.collection_prefix,
        ):
            problem = (
                f"directory says {recorded.database}/{recorded.collection_prefix}, tier "
                f"{client.tier} means {expected.database}/{expected.collection_prefix}"
            )
        elif recorded.isolation is IsolationModel.DATABASE and recorded.database not in databases:
            problem = f"database {recorded.database} does not exist"
        elif (
            recorded.isolation is IsolationModel.COLLECTION_SET
            and recorded.collection_name(users) not in shared_names
        ):
            problem = f"collection {recorded.collection_name(users)} does not exist"
        if problem:
            report.misplaced[client.tenant_id] = problem
            report.problems.append(f"tenant {client.tenant_id}: {problem}")


async def _find_orphans(layer: DataLayer, report: DoctorReport, live: set[str]) -> None:
    """Rows of the shared collections whose tenant is not live."""
    shared = layer.unguarded_database(f"{layer.prefix}_shared", why="doctor looks for orphans")
    with translate_driver_errors():
        existing = set(await shared.list_collection_names())
        for document_type in tenant_classes(layer):
            name = spec_of(document_type).name
            if name not in existing:
                continue
            for tenant_id in await shared[name].distinct("tenant_id"):
                if tenant_id not in live:
                    report.orphans.setdefault(str(tenant_id), []).append(name)
    for tenant_id, names in sorted(report.orphans.items()):
        report.problems.append(
            f"orphan rows of unknown tenant {tenant_id!r} in {', '.join(sorted(names))}"
        )
