"""Command observers, logging, tracing and client options of `connect()` (issue 12.12)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from opentelemetry import trace
from pymongo import monitoring
from pymongo.errors import OperationFailure

import caas_data
from caas_data import ConfigurationError, DataLayer, Tier, tenant_scope
from caas_data.observers import CommandEvent, CommandObservers, opentelemetry_observer
from caas_data.saas import UserRepository
from caas_data.testing import ServerHandle, new_tenant_id
from caas_data.testing.helpers import TEST_NAMESPACE_BUDGET

Observed = Callable[..., Any]


@pytest_asyncio.fixture(loop_scope="session")
async def observed(
    caas_server: ServerHandle, caas_layer: DataLayer
) -> AsyncIterator[Callable[..., Any]]:
    """Factory: a second layer on the session's databases, with the given observers."""
    opened: list[DataLayer] = []

    async def open_layer(*observers: Callable[[CommandEvent], None], **options: Any) -> DataLayer:
        layer = await caas_data.connect(
            caas_server.uri,
            database_prefix=caas_layer.prefix,
            namespace_budget=TEST_NAMESPACE_BUDGET,
            observers=observers,
            **options,
        )
        opened.append(layer)
        return layer

    yield open_layer
    for layer in opened:
        await layer.close()


async def _work(layer: DataLayer, tenant: str, task: int, rounds: int) -> None:
    async with tenant_scope(tenant, layer=layer):
        users = layer.repo(UserRepository)
        for n in range(rounds):
            await users.create({"external_id": f"{task}-{n}", "display_name": "x"})
            await asyncio.sleep(0)  # interleave with the other tenant
            await users.find({"display_name": "x"}, limit=5)


async def test_events_carry_the_callers_tenant_under_concurrency(
    caas_layer: DataLayer, observed: Observed
) -> None:
    events: list[CommandEvent] = []
    layer = await observed(events.append)
    own_db, own_set = new_tenant_id("obs-ent"), new_tenant_id("obs-pro")
    await layer.tenants.provision(own_db, tier=Tier.ENTERPRISE)
    await layer.tenants.provision(own_set, tier=Tier.PRO)
    database = (await layer.tenants.placement(own_db)).database
    users_of_set = (await layer.tenants.placement(own_set)).collection_name("users")
    events.clear()

    tenants = (own_db, own_set, own_db, own_set)
    await asyncio.gather(*(_work(layer, t, task, 6) for task, t in enumerate(tenants)))

    in_database = [e for e in events if e.database == database]
    in_set = [e for e in events if e.collection == users_of_set]
    assert {e.command for e in in_database} >= {"insert", "find"}
    assert {e.command for e in in_set} >= {"insert", "find"}
    assert {e.tenant_id for e in in_database} == {own_db}
    assert {e.tenant_id for e in in_set} == {own_set}
    # And no event of one tenant names the other's namespace.
    assert not [e for e in events if e.tenant_id == own_set and e.database == database]
    assert not [e for e in events if e.tenant_id == own_db and e.collection == users_of_set]
    assert all(e.succeeded and e.duration_ms >= 0 for e in in_database + in_set)

    # Outside any scope (the platform's own reads at provisioning): no tenant.
    events.clear()
    await layer.tenants.get(own_db)
    assert events and {e.tenant_id for e in events} == {None}


async def test_an_observer_that_raises_never_breaks_a_call(
    observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: CommandEvent) -> None:
        raise RuntimeError("observer bug")

    events: list[CommandEvent] = []
    layer = await observed(broken, events.append)
    tenant = new_tenant_id("obs-err")
    with caplog.at_level(logging.WARNING, logger="caas_data"):
        await layer.tenants.provision(tenant, tier=Tier.FREE)
        async with tenant_scope(tenant, layer=layer):
            users = layer.repo(UserRepository)
            created = await users.create({"external_id": "ok", "display_name": "x"})
            assert (await users.get(created.id)).display_name == "x"
    assert any(e.tenant_id == tenant and e.command == "insert" for e in events)  # the next one ran
    assert any("observer bug" in (r.exc_text or "") for r in caplog.records)


async def test_commands_are_logged_at_debug_with_the_tenant(
    observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="caas_data"):
        layer = await observed()  # no observer: the logger alone, enabled at connect()
    tenant = new_tenant_id("obs-log")
    await layer.tenants.provision(tenant, tier=Tier.FREE)
    with caplog.at_level(logging.DEBUG, logger="caas_data"):
        async with tenant_scope(tenant, layer=layer):
            await layer.repo(UserRepository).find()
    lines = [r.getMessage() for r in caplog.records if r.name == "caas_data.commands"]
    assert any(line.startswith("find ") and f"tenant={tenant}" in line for line in lines), lines


async def test_no_listener_is_installed_when_nothing_watches(observed: Observed) -> None:
    """No observer and command logging off at connect(): PyMongo publishes no events."""
    assert not logging.getLogger("caas_data.commands").isEnabledFor(logging.DEBUG)
    quiet = await observed()
    watched = await observed(lambda event: None)
    assert not quiet.client.options.event_listeners
    assert [type(listener) for listener in watched.client.options.event_listeners] == [
        CommandObservers
    ]


class _Span:
    def __init__(self, name: str, kind: trace.SpanKind, attributes: dict[str, Any]) -> None:
        self.name, self.kind, self.attributes = name, kind, attributes
        self.status: trace.Status | None = None
        self.ended = False

    def set_status(self, status: trace.Status) -> None:
        self.status = status

    def end(self, end_time: int | None = None) -> None:
        self.ended = True


class RecordingTracer(trace.Tracer):
    """A tracer that keeps its spans (the API package has no SDK to export them)."""

    def __init__(self) -> None:
        self.spans: list[_Span] = []

    def start_span(self, name: str, context: Any = None, kind: Any = None, **rest: Any) -> Any:
        span = _Span(name, kind, dict(rest.get("attributes") or {}))
        self.spans.append(span)
        return span

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError


async def test_opentelemetry_spans_carry_the_tenant(observed: Observed) -> None:
    tracer = RecordingTracer()
    layer = await observed(opentelemetry_observer(tracer), opentelemetry_observer())
    tenant = new_tenant_id("obs-otel")
    await layer.tenants.provision(tenant, tier=Tier.PRO)
    async with tenant_scope(tenant, layer=layer):
        await layer.repo(UserRepository).create({"external_id": "s", "display_name": "x"})
    inserts = [s for s in tracer.spans if s.attributes.get("db.operation.name") == "insert"]
    mine = [s for s in inserts if s.attributes.get("caas.tenant_id") == tenant]
    assert mine and all(s.ended and s.kind is trace.SpanKind.CLIENT for s in mine)
    assert mine[0].name == f"insert {mine[0].attributes['db.collection.name']}"
    assert mine[0].attributes["db.system"] == "mongodb"

    with pytest.raises(OperationFailure, match="noSuch"):  # the raw driver handle: its error
        await layer.unguarded_database(layer.prefix + "_platform", why="test").command("noSuch")
    failed = [s for s in tracer.spans if s.attributes.get("db.operation.name") == "noSuch"]
    assert failed and failed[0].status is not None
    assert failed[0].status.status_code is trace.StatusCode.ERROR


# -- client options ------------------------------------------------------------------------------


class _Listener(monitoring.CommandListener):
    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_client_options_reach_the_client(observed: Observed) -> None:
    listener = _Listener()
    layer = await observed(appname="caas-obs-test", maxPoolSize=7, event_listeners=[listener])
    assert layer.client.options.pool_options.max_pool_size == 7
    assert layer.client.options.pool_options.metadata["application"] == {"name": "caas-obs-test"}
    await layer.tenants.get_or_none("nobody-here")
    assert "find" in listener.names  # the caller's own listener runs beside the layer's


@pytest.mark.parametrize(
    ("option", "says"),
    [
        ({"tz_aware": False}, "timezone-aware UTC"),
        ({"document_class": dict}, "decodes documents itself"),
        ({"uuidRepresentation": "pythonLegacy"}, "standard representation"),
        ({"timeoutMS": 5}, "operation_timeout_ms"),
        ({"w": 1}, "CAAS_WRITE_CONCERN"),
    ],
)
async def test_options_the_layer_owns_are_refused(
    caas_server: ServerHandle, option: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigurationError, match="is the layer's own") as refused:
        await caas_data.connect(caas_server.uri, **option)
    assert says in str(refused.value) and next(iter(option)) in str(refused.value)


async def test_an_unknown_client_option_is_refused(caas_server: ServerHandle) -> None:
    with pytest.raises(ConfigurationError, match="client option"):
        await caas_data.connect(caas_server.uri, maxPoolSise=3)
    with pytest.raises(TypeError, match="observer is a callable"):
        await caas_data.connect(caas_server.uri, observers=["not callable"])  # type: ignore[list-item]


WITHOUT_OTEL = r"""
import importlib.abc, sys

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None

sys.meta_path.insert(0, Blocker())
import caas_data
from caas_data.observers import opentelemetry_observer
try:
    opentelemetry_observer()
except caas_data.MissingDependencyError as exc:
    print(exc.extra, "opentelemetry" in sys.modules)
"""


def test_spans_without_opentelemetry_name_the_extra() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_OTEL], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["otel", "False"]  # the layer imports without it
