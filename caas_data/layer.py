"""`connect()` and `DataLayer`: one client, its documents, the resolver and transactions."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

from beanie import init_beanie
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError
from pymongo.write_concern import WriteConcern

from caas_data.config import EncryptionOptions, Settings
from caas_data.documents import ALL_DOCUMENTS
from caas_data.documents.base import Area, BaseDocument
from caas_data.documents.beanie_state import beanie_models
from caas_data.documents.indexes import ensure_collection
from caas_data.documents.registry import DocumentRegistry, spec_of
from caas_data.documents.routing import route
from caas_data.driver_errors import translate_driver_errors
from caas_data.engine.clusters import (
    DEFAULT_NAMESPACE_BUDGET,
    HOME_CLUSTER,
    ClusterConfig,
    ClusterSet,
    validate_cluster_name,
)
from caas_data.engine.sessions import session_var
from caas_data.engine.transactions import transaction
from caas_data.errors import CaasDataError, ConfigurationError, RetryableError, WriteOutcomeUnknown
from caas_data.observers import CommandObserver, CommandObservers
from caas_data.operations.indexes import IndexReport, sync_indexes
from caas_data.repositories.base import Repository
from caas_data.services.provisioning import TenantService
from caas_data.services.resolver import TenantResolver
from caas_data.services.sharding import ShardingPlan, sharding_plan
from caas_data.tenancy.context import (
    Scope,
    connected_layer,
    current_scope,
    forget_layer,
    register_layer,
    system_scope,
    tenant_scope,
)
from caas_data.tenancy.field_encryption import (
    FieldCipher,
    FieldEncryption,
    TenantKeyring,
    keyring_for,
)
from caas_data.tenancy.guard import GuardedCollection

__all__ = ["DataLayer", "UnitOfWork", "active_layer", "connect"]

T = TypeVar("T")
R = TypeVar("R", bound=Repository[Any])


def active_layer() -> DataLayer | None:
    """The most recently connected layer that is still open."""
    found = connected_layer()
    return found if isinstance(found, DataLayer) else None


def default_documents() -> list[type[BaseDocument]]:
    """Every document class that ships with caas_data."""
    return list(ALL_DOCUMENTS)


@dataclass(frozen=True, slots=True)
class UnitOfWork:
    """The running transaction: repository and Beanie calls inside join it by themselves."""

    session: AsyncClientSession


# A commit whose answer was lost is asked again after a pause of up to this (full jitter,
# doubling from 10 ms): a server that is down is not hammered, and the wait stays within the
# operation budget.
_COMMIT_BACKOFF_CAP_SECONDS = 1.0


def _has_label(error: BaseException, label: str) -> bool:
    driver = error.driver_error if isinstance(error, CaasDataError) else error
    return isinstance(driver, PyMongoError) and driver.has_error_label(label)


def _require_reason(why: str) -> None:
    if not isinstance(why, str) or not why.strip():
        raise ConfigurationError("the escape hatch past the tenant guard needs a reason (`why=`)")


class DataLayer:
    """A connected data layer. Get one with `await caas_data.connect()`."""

    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        settings: Settings,
        documents: Iterable[type[BaseDocument]],
        *,
        encryption: EncryptionOptions | None = None,
        clusters: ClusterSet | None = None,
    ) -> None:
        self.client = client
        self.clusters = clusters or ClusterSet(client)
        self.settings = settings
        self.registry = DocumentRegistry(documents)
        self.resolver = TenantResolver(self, ttl=settings.tenant_cache_ttl_seconds)
        self.tenants = TenantService(self)
        self._databases: dict[tuple[str, str], AsyncDatabase[dict[str, Any]]] = {}
        self._collections: dict[tuple[str, str, str], AsyncCollection[dict[str, Any]]] = {}
        self._ensured: set[tuple[str, str, str]] = set()
        # Guarded handles by (class, include_deleted, tenant, placement): see `route`.
        self._routes: dict[tuple[Any, ...], GuardedCollection] = {}
        self._closed = False
        self._keyring: TenantKeyring | None = None
        self._encrypted: dict[type[BaseDocument], dict[str, FieldEncryption]] = {}
        if encryption is not None:
            self._keyring = keyring_for(
                client,
                self._database(self.database_name(Area.PLATFORM)),
                encryption,
                ttl=settings.tenant_cache_ttl_seconds,
            )

    # -- field encryption --------------------------------------------------------------

    @property
    def encryption(self) -> TenantKeyring:
        """The tenants' data keys (`ensure_key`, `erase_key`), when encryption is configured.

        Raises:
            ConfigurationError: the layer was connected without `encryption=`.
        """
        if self._keyring is None:
            raise ConfigurationError(
                "field encryption is not configured: connect(encryption=EncryptionOptions(...))"
            )
        return self._keyring

    @property
    def encrypts_fields(self) -> bool:
        """True when the layer was connected with `encryption=`."""
        return self._keyring is not None

    def field_cipher(self, document_type: type[BaseDocument], tenant_id: str) -> FieldCipher | None:
        """What encrypts `document_type`'s declared fields in a scope of `tenant_id`, if any.

        Raises:
            ConfigurationError: the class declares encrypted fields and the layer cannot
                encrypt (they would be stored in plain text).
        """
        fields = self._encrypted.get(document_type)
        if fields is None:
            spec = spec_of(document_type)
            if self._keyring is None and spec.encrypted:
                raise ConfigurationError(
                    f"{document_type.__name__} declares encrypted fields "
                    f"({', '.join(sorted(spec.encrypted))}): connect with encryption=...",
                    document_type=document_type,
                )
            personal = self._keyring is not None and self._keyring.options.personal_fields
            fields = self._encrypted[document_type] = {
                **(spec.personal if personal else {}),
                **spec.encrypted,
            }
        if self._keyring is None:
            return None
        return FieldCipher(self._keyring, tenant_id, fields)

    # -- naming and routing ------------------------------------------------------------

    @property
    def prefix(self) -> str:
        """The database prefix: `{prefix}_platform`, `{prefix}_shared`, `{prefix}_{tenant}`."""
        return self.settings.database_prefix

    def database_name(self, area: Area) -> str:
        """The database of a non-tenant area (security collections live in platform)."""
        if area is Area.TENANT:
            raise ConfigurationError("tenant data has no fixed database: it follows placement")
        return f"{self.prefix}_{area.value}"

    def unguarded_database(
        self, name: str, *, why: str, cluster: str = HOME_CLUSTER
    ) -> AsyncDatabase[dict[str, Any]]:
        """`unguarded_collection` for a whole database (DDL: drop, list collections)."""
        _require_reason(why)
        return self._database(name, cluster)

    def _database(self, name: str, cluster: str = HOME_CLUSTER) -> AsyncDatabase[dict[str, Any]]:
        database = self._databases.get((cluster, name))
        if database is None:
            database = self._databases[(cluster, name)] = self.clusters.client(cluster)[name]
        return database

    def _handle(
        self, database: str, name: str, cluster: str = HOME_CLUSTER
    ) -> AsyncCollection[dict[str, Any]]:
        """The driver's handle of a collection (cached), for routing to wrap in the guard."""
        key = (cluster, database, name)
        collection = self._collections.get(key)
        if collection is None:
            if len(self._collections) > 50_000:  # many tenants: keep the cache bounded
                self._collections.clear()
            collection = self._collections[key] = self._database(database, cluster)[name]
        return collection

    def unguarded_collection(
        self, database: str, name: str, *, why: str, cluster: str = HOME_CLUSTER
    ) -> AsyncCollection[dict[str, Any]]:
        """The one escape hatch past the tenant guard: a raw driver collection.

        For the platform's own code that the guard cannot express (DDL, the resolver's
        directory reads, provisioning). `why` is required so every use states its reason
        where it is made (grep `unguarded_`). Like `client`, it is the operator's: tenant code
        never gets a `DataLayer`, only scopes, documents and repositories.
        """
        _require_reason(why)
        return self._handle(database, name, cluster)

    def unguarded_platform_collection(
        self, document_type: type[BaseDocument], *, why: str
    ) -> AsyncCollection[dict[str, Any]]:
        """`unguarded_collection` of a non-tenant document class."""
        spec = spec_of(document_type)
        return self.unguarded_collection(self.database_name(spec.area), spec.name, why=why)

    def collection(
        self, document_type: type[BaseDocument], *, include_deleted: bool = False
    ) -> GuardedCollection:
        """The guarded collection of `document_type` in the running scope."""
        self._check_open()
        return route(self, document_type, self._scope(), include_deleted=include_deleted)

    def _scope(self) -> Scope | None:
        scope = current_scope()
        if scope is not None and scope.layer is not self:
            raise ConfigurationError("the running scope belongs to another layer")
        return scope

    def sharding_plan(self, *, zones: Mapping[str, str] | None = None) -> ShardingPlan:
        """The shardCollection and zone commands for the shared collections on a mongos.

        Generated and checked against MongoDB's rules, never run by the layer (see
        `caas_data.services.sharding`); `zones` pins large shared tenants (tenant -> zone).
        """
        return sharding_plan(self, zones=zones)

    async def sync_indexes(self, *, drop_unexpected: bool = False) -> list[IndexReport]:
        """Create what registered classes declare and a placement lacks, at every placement.

        For a document type registered after tenants exist: its collections and indexes
        reach every existing tenant (shared, collection set and database). Returns one report
        per collection where something was missing (or undeclared); an operator operation,
        refused in a tenant scope (`caas-data indexes sync` is the same from the shell).
        """
        return await sync_indexes(self, drop_unexpected=drop_unexpected)

    # -- scopes and repositories -------------------------------------------------------

    def tenant_scope(self, tenant_id: str) -> AbstractAsyncContextManager[Scope]:
        """`caas_data.tenant_scope` bound to this layer."""
        return tenant_scope(tenant_id, layer=self)

    def system_scope(self) -> AbstractAsyncContextManager[Scope]:
        """`caas_data.system_scope` bound to this layer."""
        return system_scope(layer=self)

    def repo(self, repository_type: type[R]) -> R:
        """A repository of this layer: `layer.repo(UserRepository)`."""
        self._check_open()
        return repository_type(self)

    # -- transactions ------------------------------------------------------------------

    @asynccontextmanager
    async def unit_of_work(
        self, *, cluster: str | None = None, write_concern: WriteConcern | None = None
    ) -> AsyncIterator[UnitOfWork]:
        """Run the block in one transaction; commit on exit, abort on error.

        The commit is retried on `UnknownTransactionCommitResult`, as PyMongo's
        `with_transaction` does, with jittered backoff and only within the operation budget;
        a commit still unanswered then raises `WriteOutcomeUnknown`. The block itself runs
        once: a transient error inside it aborts and raises `RetryableError`;
        `run_transaction()` re-runs a whole callback. Nested units of work join the outer
        transaction. The commit uses the layer's write concern (`w: majority`) unless
        `write_concern` overrides it. A transaction runs on one cluster: the running tenant's
        (its data), or `cluster` (the platform's rows: `HOME_CLUSTER`).
        """
        self._check_open()
        outer = session_var.get()
        if outer is not None and outer.in_transaction:
            yield UnitOfWork(outer)
            return
        scope = current_scope()
        placement = scope.placement if scope is not None and scope.layer is self else None
        # A session belongs to one client: a tenant's transaction runs on its own cluster.
        if cluster is None:
            cluster = placement.cluster if placement is not None else HOME_CLUSTER
        client = self.clusters.client(cluster)
        async with client.start_session() as session:
            with translate_driver_errors():
                await session.start_transaction(write_concern=write_concern)
            token = session_var.set(session)
            try:
                yield UnitOfWork(session)
            except BaseException:
                session_var.reset(token)
                if session.in_transaction:
                    # The server aborts on its own too; the original error is what matters.
                    with suppress(PyMongoError):
                        await session.abort_transaction()
                raise
            session_var.reset(token)
            await self._commit(session)

    async def _commit(self, session: AsyncClientSession) -> None:
        budget = self.settings.operation_timeout_ms / 1000
        deadline = time.monotonic() + budget
        attempt = 0
        while True:
            try:
                with translate_driver_errors():
                    await session.commit_transaction()
                return
            except RetryableError as exc:
                retry = _has_label(exc, "UnknownTransactionCommitResult") and not (
                    isinstance(exc.driver_error, OperationFailure)
                    and exc.driver_error.code == 50  # MaxTimeMSExpired: do not retry
                )
                pause = random.uniform(0, min(_COMMIT_BACKOFF_CAP_SECONDS, 0.01 * 2**attempt))
                attempt += 1
                if not retry:
                    raise
                if time.monotonic() + pause > deadline:
                    if isinstance(exc, WriteOutcomeUnknown):
                        raise
                    raise WriteOutcomeUnknown(
                        f"transaction commit unanswered after {attempt} attempt(s) within the "
                        f"{budget:g}s operation budget: {exc.message}",
                        driver_error=exc.driver_error,
                    ) from exc
                await asyncio.sleep(pause)

    async def run_transaction(
        self,
        callback: Callable[[], Awaitable[T]],
        *,
        max_attempts: int = 10,
        cluster: str | None = None,
    ) -> T:
        """Run `callback` in a unit of work, re-running it on transient transaction errors.

        Inside a running transaction it joins it and runs once (`engine.transactions`).
        """
        return await transaction(self, callback, max_attempts=max_attempts, cluster=cluster)

    # -- lifecycle ---------------------------------------------------------------------

    async def _start(self) -> None:
        try:
            with translate_driver_errors():
                await self.client.admin.command("ping")
            platform_db = self._database(self.database_name(Area.PLATFORM))
            await init_beanie(
                database=platform_db,
                document_models=beanie_models(self.registry.all()),
                skip_indexes=True,
            )
            if self.settings.create_platform_indexes:
                await self.ensure_platform_collections()
        except BaseException:
            await self.client.close()
            raise
        register_layer(self)

    async def ensure_platform_collections(self) -> None:
        """Create the platform, billing and analytics collections and their indexes."""
        for area in (Area.PLATFORM, Area.BILLING, Area.ANALYTICS):
            for document_type in self.registry.in_area(area):
                await self.ensure_collection(
                    self.database_name(area),
                    spec_of(document_type).name,
                    document_type,
                    pre_images=spec_of(document_type).tenant_keyed,
                )

    async def ensure_collection(
        self,
        database: str,
        name: str,
        document_type: type[BaseDocument],
        *,
        pre_images: bool,
        cluster: str = HOME_CLUSTER,
    ) -> None:
        """Create a collection and its indexes once per layer.

        Shared collections serve many tenants: provisioning the thousandth free tenant must
        not re-create them.
        """
        key = (cluster, database, name)
        if key in self._ensured:
            return
        await ensure_collection(
            self._database(database, cluster), name, document_type, pre_images=pre_images
        )
        self._ensured.add(key)

    def forget_ensured(
        self,
        database: str | None = None,
        collections: Iterable[str] | None = None,
        *,
        cluster: str = HOME_CLUSTER,
    ) -> None:
        """Forget that collections exist (all, a database's, or some of a database's)."""
        if database is None:
            self._ensured.clear()
        elif collections is None:
            self._ensured = {k for k in self._ensured if k[:2] != (cluster, database)}
        else:
            self._ensured -= {(cluster, database, name) for name in collections}

    @property
    def closed(self) -> bool:
        """True once `close()` ran."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError("this layer is closed")

    async def close(self) -> None:
        """Close the client; idempotent."""
        if self._closed:
            return
        self._closed = True
        forget_layer(self)
        if self._keyring is not None:
            await self._keyring.close()
        await self.clusters.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _w(value: str) -> str | int:
    return int(value) if value.isdigit() else value


async def connect(
    uri: str | None = None,
    *,
    database_prefix: str | None = None,
    documents: Iterable[type[BaseDocument]] | None = None,
    operation_timeout_ms: int | None = None,
    encryption: EncryptionOptions | None = None,
    clusters: Mapping[str, str | ClusterConfig] | None = None,
    namespace_budget: int = DEFAULT_NAMESPACE_BUDGET,
    observers: Iterable[CommandObserver] = (),
    **client_options: Any,
) -> DataLayer:
    """Connect to the cluster(s) and initialise the documents; never starts a server.

    Args:
        uri: connection string of the home cluster; defaults to `CAAS_MONGODB_URI`.
        clusters: more clusters by name (a URI or a `ClusterConfig` with its own budget);
            Pro and Enterprise tenants can live there, the platform stays home.
        namespace_budget: collections plus indexes the home cluster may hold.
        database_prefix: defaults to `CAAS_DATABASE_PREFIX`, then `caas`.
        documents: extra document classes to register beside the built-in ones.
        operation_timeout_ms: per-operation timeout; defaults to the setting.
        encryption: field encryption (data keys per tenant); needs the `encryption` extra.
        observers: callables given a `CommandEvent` (command, database, collection, tenant,
            duration, success) after each database command (`caas_data.observers`). The
            command listener is installed only with observers, or when the
            `caas_data.commands` logger is enabled for DEBUG at this call.
        client_options: more `AsyncMongoClient` options (`maxPoolSize=`, `appname=`,
            `event_listeners=`...), for every cluster; the ones the layer owns are refused.

    Raises:
        ConfigurationError: no uri given nor set in the environment; a client option the
            layer owns, or one PyMongo does not accept.
        RetryableError: the server did not answer.
    """
    overrides: dict[str, Any] = {}
    if uri is not None:
        overrides["mongodb_uri"] = uri
    if database_prefix is not None:
        overrides["database_prefix"] = database_prefix
    if operation_timeout_ms is not None:
        overrides["operation_timeout_ms"] = operation_timeout_ms
    try:
        settings = Settings(**overrides)
    except ValueError as exc:
        raise ConfigurationError(f"invalid settings: {exc}") from exc
    if not settings.mongodb_uri:
        raise ConfigurationError("no MongoDB URI: pass connect(uri=...) or set CAAS_MONGODB_URI")
    all_documents = default_documents() + [
        d for d in (documents or []) if d not in default_documents()
    ]
    options = _client_options(client_options, CommandObservers(observers))
    client = _client(settings.mongodb_uri, settings, options)
    others: dict[str, tuple[AsyncMongoClient[dict[str, Any]], int]] = {}
    for name, given in (clusters or {}).items():
        config = given if isinstance(given, ClusterConfig) else ClusterConfig(given)
        client_of = _client(config.uri, settings, options)
        others[validate_cluster_name(name)] = (client_of, config.namespace_budget)
    cluster_set = ClusterSet(client, home_budget=namespace_budget, others=others)
    try:
        layer = DataLayer(
            client, settings, all_documents, encryption=encryption, clusters=cluster_set
        )
    except BaseException:
        await cluster_set.close()
        raise
    try:
        await layer._start()
    except ConnectionFailure as exc:  # pragma: no cover - translated above
        raise RetryableError(f"cannot reach MongoDB: {exc}") from exc
    return layer


# Client options the layer sets itself, by lower-case name (PyMongo's are case-insensitive),
# with what to do instead.
_OWNED_OPTIONS = {
    "tz_aware": "the layer reads datetimes as timezone-aware UTC",
    "tzinfo": "the layer reads datetimes as timezone-aware UTC",
    "datetime_conversion": "the layer reads datetimes as timezone-aware UTC",
    "document_class": "the layer decodes documents itself",
    "type_registry": "the layer decodes documents itself",
    "uuidrepresentation": "the layer stores UUIDs in the standard representation",
    "timeoutms": "use connect(operation_timeout_ms=...) or CAAS_OPERATION_TIMEOUT_MS",
    "w": "the write concern is CAAS_WRITE_CONCERN (README: Guarantees)",
    "wtimeoutms": "the write concern is CAAS_WRITE_CONCERN (README: Guarantees)",
    "journal": "the write concern is CAAS_WRITE_CONCERN (README: Guarantees)",
}


def _client_options(given: Mapping[str, Any], listener: CommandObservers) -> dict[str, Any]:
    """`connect()`'s extra client options, checked, with the layer's listener when needed."""
    for name in given:
        reason = _OWNED_OPTIONS.get(name.lower())
        if reason is not None:
            raise ConfigurationError(f"client option {name!r} is the layer's own: {reason}")
    options = dict(given)
    if listener.needed:  # an idle listener would still cost every command its events
        options["event_listeners"] = [*options.get("event_listeners", ()), listener]
    return options


def _client(
    uri: str, settings: Settings, options: Mapping[str, Any]
) -> AsyncMongoClient[dict[str, Any]]:
    try:
        return AsyncMongoClient(
            uri,
            tz_aware=True,
            timeoutMS=settings.operation_timeout_ms,
            uuidRepresentation="standard",
            # Pinned, not left to the deployment: whatever a user is told was saved must
            # survive the loss of the primary (see README "Guarantees").
            w=_w(settings.write_concern),
            **options,
        )
    except (PyMongoError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"invalid MongoDB URI or client option: {exc}") from exc
