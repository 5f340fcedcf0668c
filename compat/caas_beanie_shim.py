"""pytest plugin: Beanie's own tests/odm on caas_data's tenant-aware document base.

Loaded by compat/beanie_compat.py with `-p caas_beanie_shim`, i.e. imported before Beanie's conftests and
so before tests/odm/models.py. Environment: CAAS_BEANIE_TIER (free|starter|pro|enterprise) and
MONGODB_DSN (the server's URI).

What it does, and every deviation from Beanie's own set-up:

1. Rebase. `beanie.Document` and `beanie.odm.documents.Document` become `CaasBeanieDocument`,
   an empty subclass of `caas_data.TenantDocument` (tenant id, `__v`, timestamps, routing per
   call through `get_pymongo_collection()`). Beanie's `DocumentWithSoftDelete` subclasses the
   original `Document` at import time, so its class body (Beanie's own source, unchanged) is
   executed again with `Document` bound to the rebased class. Beanie's internals keep the
   original class (a base of the rebased one), as caas_data's own documents do. Both
   rebased bases are marked `caas_abstract = True`, as Beanie's `Document` is never
   initialised itself. `beanie.UnionDoc` becomes `caas_data.TenantUnionDoc` (routed like
   its members) and `beanie.View` `caas_data.TenantView` (its pipeline on its source's
   routed collection), as a caas_data user declares them.
2. Registration, as a caas_data user must do it (`init` fixture, session scope):
   - `caas_data.testing.connect_for_tests(uri)`: a layer on fresh databases (its own prefix).
   - `init_beanie(database=<platform db>, document_models=TESTING_MODELS, skip_indexes=True)`:
     the exact call `DataLayer._start()` makes for registered documents; made here for all of
     Beanie's test models at once so inheritance children, views and union docs are wired the
     way Beanie's conftest wires them.
   - Every test model is registered with `layer.registry.register` as a user would; a model
     the registry refuses (two unrelated classes naming one collection) is listed in the
     terminal summary and routed without registration (routing reads the class itself).
   - `layer.tenants.provision(tenant, tier=TIER)` creates the tenant's collections and the
     registered classes' indexes (`Indexed()` fields and `Settings.indexes`).
3. Scope. The same fixture enters `caas_data.tenant_scope(tenant)` and yields inside it.
   pytest-asyncio (>= 0.25, Python >= 3.11) copies ContextVar changes made by an async
   fixture into the main context and every later fixture and test runs in a copy of it, so
   every test, async or sync fixture runs inside the scope (checked by `_check_scope`).
4. `clean_db` (autouse, per test): Beanie's version keys collections by
   `(collection.database.name, collection.name)`; the tenant guard refuses `.database`
   (fail-closed), so this copy keys them by `full_name` (an attribute the guard allows).
   Otherwise identical: `delete_many({})` through `get_pymongo_collection()` before and
   after each test, cache reset.
5. `cli` (session): the layer's own client, so `session` fixtures (`cli.start_session()`)
   belong to the client the routed collections use; PyMongo refuses a session of another
   client. `db` stays `cli["beanie_db"]`.

Experiment only (not part of the measurement): CAAS_BEANIE_ABLATE=beanie-instance-writes
deletes caas_data's overrides of insert/create/replace/save from BaseDocument, so Beanie's own
instance methods run (still routed and guarded). It separates what those overrides break from
what the routing and the guard break.
"""

from __future__ import annotations

import inspect
import os
import textwrap
from typing import Any, ClassVar

import beanie
import beanie.odm.documents as _beanie_documents
import beanie.odm.union_doc as _beanie_union_doc
import beanie.odm.views as _beanie_views
import pytest
import pytest_asyncio
from caas_data import TenantDocument, TenantUnionDoc, TenantView, tenant_scope
from caas_data.tenancy.context import current_scope

TIER = os.environ.get("CAAS_BEANIE_TIER", "free")
_ORIGINAL_DOCUMENT = _beanie_documents.Document


class CaasBeanieDocument(TenantDocument):
    """What `beanie.Document` means in this run."""

    caas_abstract: ClassVar[bool] = True  # a base, like Beanie's Document


def _rebased_soft_delete() -> type:
    namespace = dict(vars(_beanie_documents))
    namespace["Document"] = CaasBeanieDocument
    source = textwrap.dedent(inspect.getsource(_beanie_documents.DocumentWithSoftDelete))
    exec(compile(source, _beanie_documents.__file__, "exec"), namespace)
    return namespace["DocumentWithSoftDelete"]


CaasDocumentWithSoftDelete = _rebased_soft_delete()
CaasDocumentWithSoftDelete.caas_abstract = True
for _module in (beanie, _beanie_documents):
    _module.Document = CaasBeanieDocument  # type: ignore[attr-defined]
    _module.DocumentWithSoftDelete = CaasDocumentWithSoftDelete  # type: ignore[attr-defined]
for _module in (beanie, _beanie_union_doc):
    _module.UnionDoc = TenantUnionDoc  # type: ignore[attr-defined]
for _module in (beanie, _beanie_views):
    _module.View = TenantView  # type: ignore[attr-defined]

if os.environ.get("CAAS_BEANIE_ABLATE") == "beanie-instance-writes":
    from caas_data.documents.base import BaseDocument

    for _name in ("insert", "create", "replace", "save"):
        if _name in vars(BaseDocument):
            delattr(BaseDocument, _name)

STATE: dict[str, Any] = {}


def _register(layer: Any, models: list[type]) -> list[str]:
    """Register every caas model as a user would; return the refusals (name: reason)."""
    from caas_data.errors import ConfigurationError

    refused = []
    for cls in models:
        if not (isinstance(cls, type) and issubclass(cls, CaasBeanieDocument)):
            continue
        try:
            layer.registry.register(cls)
        except ConfigurationError as exc:
            refused.append(f"{cls.__name__}: {exc}")
    return refused


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def caas_beanie_layer() -> Any:
    from beanie import init_beanie
    from caas_data.testing import connect_for_tests, drop_prefix_databases, new_tenant_id

    from tests.odm.conftest import TESTING_MODELS

    layer = await connect_for_tests(os.environ["MONGODB_DSN"])
    try:
        platform_db = layer.client[f"{layer.prefix}_platform"]
        await init_beanie(database=platform_db, document_models=TESTING_MODELS, skip_indexes=True)
        refused = _register(layer, TESTING_MODELS)
        tenant = new_tenant_id("beanie")
        await layer.tenants.provision(tenant, tier=TIER)
        STATE.update(layer=layer, tenant=tenant, refused=refused)
        yield layer
    finally:
        try:
            await drop_prefix_databases(layer)
        finally:
            await layer.close()


@pytest.fixture(scope="session")
def cli(caas_beanie_layer: Any) -> Any:
    """The layer's client (see the module docstring, point 5)."""
    return caas_beanie_layer.client


@pytest_asyncio.fixture(scope="session", autouse=True, loop_scope="session")
async def init(caas_beanie_layer: Any) -> Any:
    """Replaces Beanie's `init`: the caas layer, one tenant, and its scope for the session."""
    async with tenant_scope(STATE["tenant"], layer=caas_beanie_layer) as scope:
        STATE["placement"] = scope.placement
        yield scope


@pytest.fixture(autouse=True)
async def clean_db() -> Any:
    """Beanie's `clean_db`, keyed by `full_name` (see the module docstring, point 4)."""
    from tests.odm.conftest import TESTING_MODELS

    async def _cleanup() -> None:
        seen = set()
        layer = STATE["layer"]
        for model in TESTING_MODELS:
            if not issubclass(model, _ORIGINAL_DOCUMENT):
                continue
            if model not in layer.registry:  # refused at registration: the layer never uses it
                continue
            collection = model.get_pymongo_collection()
            key = collection.full_name
            if key in seen:
                continue
            seen.add(key)
            await collection.delete_many({})
            cache = getattr(model, "_cache", None)
            if cache is not None:
                cache.cache.clear()

    _check_scope()
    await _cleanup()
    yield
    await _cleanup()


def _check_scope() -> None:
    scope = current_scope()
    if scope is None or scope.tenant_id != STATE.get("tenant"):
        raise RuntimeError(f"caas shim: test runs outside the tenant scope ({scope!r})")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Fail a test loudly if it would run outside the tenant scope (the test's own context is
    a copy of this one, made by pytest-asyncio when the test starts)."""
    if STATE.get("layer") is not None:
        _check_scope()
    return (yield)


def pytest_report_header(config: pytest.Config) -> str:
    ablate = os.environ.get("CAAS_BEANIE_ABLATE")
    return (f"caas_beanie_shim: Document rebased on caas_data.TenantDocument, tier {TIER}"
            + (f", ablation {ablate}" if ablate else ""))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    layer = STATE.get("layer")
    if layer is None:
        return
    terminalreporter.write_line(
        f"caas_beanie_shim: tenant {STATE['tenant']} tier {TIER} "
        f"ablation {os.environ.get('CAAS_BEANIE_ABLATE') or 'none'} "
        f"placement {STATE.get('placement')!r}; "
        f"{len(STATE['layer'].registry.all())} classes registered"
    )
    for refusal in STATE.get("refused", []):
        terminalreporter.write_line(f"caas_beanie_shim: not registered: {refusal}")
