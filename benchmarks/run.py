"""One benchmark run: start (or reach) a server, run every contender, write the results."""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import sys
import time
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from beanie import init_beanie
from pymongo import AsyncMongoClient

from benchmarks import models as m
from benchmarks import tenancy
from benchmarks.gaps import explain_gap
from benchmarks.micro import client_costs
from benchmarks.move_throughput import move_round, seed_users
from benchmarks.odm import (
    SINGLE_TASKS,
    TASKS,
    BeanieApi,
    OdmRun,
    OurBeanieApi,
    PagedRepoSide,
    PlatformRepoSide,
    RawSide,
    RepoSide,
    Side,
    TypedSide,
)
from benchmarks.report import FLOOR_TARGET, Report
from caas_data import DataLayer, Tier, connect
from caas_data.config import Settings
from caas_data.layer import default_documents
from caas_data.testing.helpers import drop_prefix_databases, new_tenant_id, patient_uri


def log(message: str) -> None:
    """Progress on stderr (the report goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


MODELS = {"shared": Tier.FREE, "pro": Tier.PRO, "enterprise": Tier.ENTERPRISE}


@dataclass(frozen=True)
class Profile:
    """How big a run is."""

    name: str
    ops: int  # operations per contender and iteration of a single-document task
    iterations: int
    bulk_docs: int
    directory_sizes: tuple[int, ...]
    lookups: int
    provision_per_model: int
    history_sizes: tuple[int, ...]
    history_pages: int
    inbox_conversations: int
    inbox_calls: int
    timeout_variants: bool = True
    tenancy: bool = True
    odm: bool = True
    tasks: tuple[str, ...] = TASKS  # a subset, for the before/after of one change
    sides: str = ""  # a regex: only the contenders whose name matches (and raw, typed, beanie)
    move_documents: int = 0  # users of the tenant moved Free -> Pro -> Enterprise -> Free


PROFILES = {
    "tiny": Profile(
        "tiny", 5, 1, 50, (10, 20), 5, 1, (60, 120), 3, 25, 3, False, move_documents=50
    ),
    # What fits a few minutes on a loaded 2-CPU host: smaller batches, 10k-row data sets.
    "reduced": Profile(
        "reduced", 40, 2, 10_000, (10, 1_000, 10_000), 50, 1, (1_000, 10_000), 30, 1_000, 20,
        move_documents=2_000,
    ),
    "quick": Profile(
        "quick", 100, 5, 10_000, (10, 1_000, 100_000), 200, 2, (1_000, 100_000), 500, 1_000, 50,
        move_documents=2_000,
    ),
    # The ODM tasks alone, smaller: the before/after of one change.
    "cuts": Profile(
        "cuts", 100, 3, 10_000, (), 0, 0, (), 0, 0, 0, timeout_variants=False, tenancy=False
    ),
    # Only the client-side costs of the hot paths (seconds): the before/after of one change.
    "micro": Profile(
        "micro", 2000, 0, 0, (), 0, 0, (), 0, 0, 0, timeout_variants=False, tenancy=False,
        odm=False,
    ),
    "full": Profile(
        "full", 500, 7, 10_000, (10, 1_000, 100_000), 500, 5, (1_000, 100_000, 1_000_000), 500,
        1_000, 300, move_documents=50_000,
    ),
}  # fmt: skip

LOAD_TIMEOUT_MS = 300_000
DEFAULT_CACHE = "--cache-size 2G"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in ("caas-data", "pymongo", "beanie", "pydantic", "pydantic-core", "SecantusDB"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


async def run(profile: Profile, uri: str, out: Path | None, *, server: str) -> Report:
    """Run `profile` against the server at `uri`; write the results into `out` if given."""
    started = time.time()
    prefix = "bench" + uuid.uuid4().hex[:8]
    # A long per-operation timeout: loading 100k-row data sets on a busy embedded server can
    # take more than the default 10 s (the figures do not depend on its value).
    layer = await connect(
        patient_uri(uri),
        database_prefix=prefix,
        documents=m.OUR_DOCUMENTS,
        operation_timeout_ms=LOAD_TIMEOUT_MS,
    )
    # The baselines' client has the layer's client options (a per-operation deadline,
    # timeoutMS, and the write concern): PyMongo's timeoutMS alone costs 2-25% of a
    # single-document call (the "per timeout choice" table), a cost of the option, not of
    # the layer. The layer installs no command listener unless something watches (no
    # observer here), so neither client publishes command events.
    raw_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        patient_uri(uri),
        tz_aware=True,
        uuidRepresentation="standard",
        timeoutMS=layer.settings.operation_timeout_ms,
        **layer.client.write_concern.document,
    )
    report = Report(profile.name, machine(), {"kind": server}, versions())
    try:
        report.server["buildinfo"] = (await raw_client.admin.command("buildinfo")).get("version")
        # One database per baseline: the raw and typed sides once shared one, and each bulk
        # read returned both sides' 10k documents while counting 10k (twice the cost shown).
        raw_db, typed_db = raw_client[f"{prefix}_raw"], raw_client[f"{prefix}_typed"]
        for database in (raw_db, typed_db):
            await database["nested"].create_index([("tenant_id", 1), (m.NESTED_PATH, 1)])
        bare_db = raw_client[f"{prefix}_bare"]
        await bare_db["nested"].create_index(m.NESTED_PATH)
        beanie_db = raw_client[f"{prefix}_beanie"]
        await init_beanie(database=beanie_db, document_models=m.BEANIE_DOCUMENTS)
        tenants = {}
        for model, tier in MODELS.items():
            tenants[model] = new_tenant_id(f"b{model[:3]}")
            await layer.tenants.provision(tenants[model], tier=tier)
        log("client-side costs")
        report.micro = await client_costs(layer, tenants["shared"], max(profile.ops, 1000))
        overhead = None
        if profile.tenancy:
            # Before the ODM tasks load the shared collection: the embedded server scans it for
            # the guard's `{_id, tenant_id}` (README, design notes), a cost MongoDB's `_id`
            # index does not have, and its length leaks into the figure (three runs each:
            # 1.016-1.039x beside no other tenant's rows, 1.031-1.049x beside 20,000).
            log("tenancy: the overhead of scope, routing and guard")
            overhead = await tenancy.tenancy_overhead(
                layer, tenants["shared"], profile.ops * 3, profile.iterations
            )
        if profile.odm:
            await odm_figures(report, layer, (raw_db, typed_db, bare_db), tenants, profile)
        if profile.timeout_variants:
            log("timeoutMS variants")
            report.timeouts = await timeout_variants(uri, prefix, profile)
        if profile.tenancy:
            log("tenancy")
            report.tenancy = await tenancy_figures(layer, tenants, profile)
            report.tenancy.overhead = overhead or {}
    finally:
        await drop_prefix_databases(layer)
        for name in (f"{prefix}_raw", f"{prefix}_typed", f"{prefix}_bare", f"{prefix}_beanie"):
            await raw_client.drop_database(name)
        await layer.close()
        await raw_client.close()
    report.seconds = time.time() - started
    if out is not None:
        report.write(out)
    return report


async def odm_figures(
    report: Report,
    layer: DataLayer,
    databases: tuple[Any, Any, Any],
    tenants: dict[str, str],
    profile: Profile,
) -> None:
    # The baselines store the same documents as the layer, for a tenant of their own.
    baseline = new_tenant_id("bbase")
    raw_db, typed_db, bare_db = databases
    sides: list[Side] = [RawSide(raw_db, baseline), TypedSide(typed_db, baseline), BeanieApi(
        "beanie", {"small": m.BeanieSmall, "large": m.BeanieLarge, "nested": m.BeanieNested,
        "bulk": m.BeanieBulk}, baseline), RawSide(bare_db, baseline, standard=False)]  # fmt: skip
    for model, tenant_id in tenants.items():
        sides.append(RepoSide(f"repo, {model}", layer, tenant_id))
    # The Beanie API contenders get tenants of their own: sharing the repositories' tenants,
    # each bulk read returned both contenders' 10k documents while counting 10k.
    for model, tier in MODELS.items():
        api_tenant = new_tenant_id(f"a{model[:3]}")
        await layer.tenants.provision(api_tenant, tier=tier)
        sides.append(OurBeanieApi(f"beanie api, {model}", layer, api_tenant))
    paged = PagedRepoSide("repo, shared, find() pages", layer, tenants["shared"])
    paged.needs_data_sets = False  # reads the data set of "repo, shared"
    sides += [paged, PlatformRepoSide(layer)]
    if profile.sides:
        wanted = re.compile(profile.sides)
        sides = sides[:4] + [s for s in sides[4:] if wanted.search(s.name)]
    odm = OdmRun(sides, ops=profile.ops, bulk_docs=profile.bulk_docs)
    log(f"ODM tasks: setting up {len(sides)} contenders")
    await odm.setup()
    log(f"ODM tasks: {profile.iterations} iterations")
    await odm.iterate(profile.tasks, profile.iterations)
    report.odm = odm.results()
    report.odm_sizes = odm.sizes
    # A missed floor target names the profile lines that hold the time (issue 16).
    by_name = {side.name: side for side in sides}
    for family, (ratio, task, worst) in report.worst_vs_floor().items():
        if ratio > FLOOR_TARGET:
            log(f"profiling {worst} against the typed floor on {task}")
            lines = await explain_gap(odm, by_name[worst], by_name["typed floor"], task)
            report.gaps[family] = {
                "task": task,
                "side": worst,
                "lines": [dataclasses.asdict(line) for line in lines],
            }


async def tenancy_figures(
    layer: DataLayer, tenants: dict[str, str], profile: Profile
) -> tenancy.TenancyFigures:
    figures = tenancy.TenancyFigures()
    shared = tenants["shared"]
    figures.scope_entry_us = await tenancy.scope_entry(layer, shared, profile.ops * 5)
    figures.provision = await tenancy.provisioning(layer, profile.provision_per_model)
    directory = layer.unguarded_platform_collection(
        tenancy.SaasClient, why="benchmark: a directory row to clone"
    )
    template = await directory.find_one({"tenant_id": shared})
    assert template is not None
    log("tenancy: provisioning done; directory")
    for size in profile.directory_sizes:
        ids = await tenancy.grow_directory(layer, template, size)
        figures.resolve[size] = await tenancy.resolution(layer, ids, profile.lookups)
    log("tenancy: history pages")
    figures.history, figures.history_plan = await tenancy.history_pages(
        layer, shared, list(profile.history_sizes), profile.history_pages
    )
    log("tenancy: inbox")
    figures.inbox = await tenancy.inbox(
        layer, shared, profile.inbox_conversations, profile.inbox_calls
    )
    if profile.move_documents:
        log(f"tenancy: moving a tenant of {profile.move_documents:,} users")
        moving = new_tenant_id("bmove")
        await layer.tenants.provision(moving, tier=Tier.FREE)
        await seed_users(layer, moving, profile.move_documents)
        figures.moves = [figures for _, figures in await move_round(layer, moving)]
    return figures


TIMEOUT_VARIANTS: dict[str, dict[str, Any]] = {
    "timeoutMS=10000 (default)": {"timeoutMS": 10_000},
    "socketTimeoutMS=10000": {"socketTimeoutMS": 10_000},
    "no client timeout": {},
}


async def timeout_variants(uri: str, prefix: str, profile: Profile) -> dict[str, dict[str, float]]:
    """Client CPU per op of the single-document tasks (shared model) per client timeout choice.

    The layer's own client is built here with each option (connect() always sets timeoutMS).
    """
    out: dict[str, dict[str, float]] = {}
    documents = [*default_documents(), *m.OUR_DOCUMENTS]
    layers = []
    for label, options in TIMEOUT_VARIANTS.items():
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            patient_uri(uri), tz_aware=True, uuidRepresentation="standard", **options
        )
        layer = DataLayer(client, Settings(database_prefix=f"{prefix}t"), documents)
        await layer._start()
        tenant_id = new_tenant_id("btime")
        await layer.tenants.provision(tenant_id, tier=Tier.FREE)
        layers.append((label, RepoSide(label, layer, tenant_id)))
    try:
        odm = OdmRun([side for _, side in layers], ops=profile.ops, bulk_docs=10)
        await odm.iterate(SINGLE_TASKS, profile.iterations)
        for (task, label), result in odm.results().items():
            out.setdefault(label, {})[task] = result.cpu_us_per_op
    finally:
        await drop_prefix_databases(layers[0][1].layer)
        for _, side in layers:
            await side.layer.close()
    return out
