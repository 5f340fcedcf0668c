"""Watching the layer's database commands: events carrying the tenant, logs, tracing spans.

`connect(observers=[...])` installs one PyMongo `CommandListener` that turns each command
into a `CommandEvent` (command name, database, collection, the running scope's tenant,
duration, success) and hands it to every observer. The same events are logged at DEBUG on
the `caas_data.commands` logger (a child of `caas_data`), and `opentelemetry_observer()`
turns them into spans (extra `otel`).

The listener is installed only when it has work: observers were given, or that logger was
enabled for DEBUG when `connect()` ran. With any listener registered, PyMongo builds and
publishes event objects for every command: measured at 6-10% of the client CPU of a
primary-key read or an insert (issue 16), so an idle listener is not left in place.

Observers run inline, in the task that ran the command (so the tenant is the caller's), and
must be quick. An observer that raises is logged and skipped: it never breaks the call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pymongo import monitoring

from caas_data.errors import optional_dependency
from caas_data.tenancy.context import current_scope

__all__ = ["CommandEvent", "CommandObserver", "CommandObservers", "opentelemetry_observer"]

logger = logging.getLogger("caas_data.commands")

_GET_MORE = "getMore"  # names its collection under "collection" (its first value is a cursor)
_MAX_PENDING = 10_000  # started commands whose end never came (a dropped connection)


@dataclass(frozen=True, slots=True)
class CommandEvent:
    """One finished database command, as the layer saw it."""

    command: str
    """The command's name: `find`, `insert`, `aggregate`, `commitTransaction`..."""
    database: str
    collection: str | None
    """The collection it names; None for database-level commands (`ping`, transactions)."""
    tenant_id: str | None
    """The running tenant scope's tenant; None in a system scope or outside any scope."""
    duration_ms: float
    succeeded: bool
    error_code: int | None = None
    """The server's error code of a failed command (never its message: it may quote values)."""
    error_name: str | None = None


CommandObserver = Callable[[CommandEvent], None]


def _collection_of(event: monitoring.CommandStartedEvent) -> str | None:
    command = event.command
    if event.command_name == _GET_MORE:
        name = command.get("collection")
    else:
        name = command.get(event.command_name)
    return name if isinstance(name, str) else None


class CommandObservers(monitoring.CommandListener):
    """The PyMongo listener `connect()` installs: commands to `CommandEvent`s, to observers."""

    def __init__(self, observers: Iterable[CommandObserver] = ()) -> None:
        self.observers = tuple(observers)
        for observer in self.observers:
            if not callable(observer):
                raise TypeError(
                    f"an observer is a callable taking a CommandEvent, not {observer!r}"
                )
        # (request id, connection) -> (tenant, collection), from start to end of a command.
        self._pending: dict[tuple[int, Any], tuple[str | None, str | None]] = {}

    @property
    def needed(self) -> bool:
        """Whether installing the listener does anything: observers, or command logging on."""
        return self._watching()

    def _watching(self) -> bool:
        return bool(self.observers) or logger.isEnabledFor(logging.DEBUG)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Note the running scope's tenant: this runs in the task that sent the command."""
        if not self._watching():
            return
        scope = current_scope()
        if len(self._pending) >= _MAX_PENDING:
            self._pending.clear()
        self._pending[(event.request_id, event.connection_id)] = (
            scope.tenant_id if scope is not None else None,
            _collection_of(event),
        )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Report the command as succeeded."""
        self._finish(event, succeeded=True)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Report the command as failed, with the server's error code and name."""
        self._finish(event, succeeded=False)

    def _finish(
        self,
        event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent,
        *,
        succeeded: bool,
    ) -> None:
        started = self._pending.pop((event.request_id, event.connection_id), None)
        if started is None:
            return
        failure = event.failure if isinstance(event, monitoring.CommandFailedEvent) else {}
        code = failure.get("code")
        name = failure.get("codeName")
        observed = CommandEvent(
            command=event.command_name,
            database=event.database_name,
            collection=started[1],
            tenant_id=started[0],
            duration_ms=event.duration_micros / 1000,
            succeeded=succeeded,
            error_code=code if isinstance(code, int) else None,
            error_name=name if isinstance(name, str) else None,
        )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s.%s tenant=%s %.2f ms %s",
                observed.command,
                observed.database,
                observed.collection or "-",
                observed.tenant_id or "-",
                observed.duration_ms,
                "ok" if succeeded else f"failed ({observed.error_name or observed.error_code})",
            )
        for observer in self.observers:
            try:
                observer(observed)
            except Exception:  # an observer's bug must not break the caller's command
                logger.warning("command observer %r raised; skipped", observer, exc_info=True)


def opentelemetry_observer(tracer: Any | None = None) -> CommandObserver:
    """An observer that records each command as an OpenTelemetry client span.

    The span (`find users`, kind CLIENT) carries `db.system`, `db.operation.name`,
    `db.namespace`, `db.collection.name` and `caas.tenant_id`, and is a child of the span
    current in the calling task. Needs `opentelemetry-api` (extra `otel`).

    Args:
        tracer: the tracer to use; default `opentelemetry.trace.get_tracer("caas_data")`.
    """
    with optional_dependency("opentelemetry", extra="otel", feature="OpenTelemetry spans"):
        from opentelemetry import trace

    chosen = tracer if tracer is not None else trace.get_tracer("caas_data")

    def observe(event: CommandEvent) -> None:
        end = time.time_ns()
        attributes: dict[str, str] = {"db.system": "mongodb", "db.operation.name": event.command}
        attributes["db.namespace"] = event.database
        if event.collection is not None:
            attributes["db.collection.name"] = event.collection
        if event.tenant_id is not None:
            attributes["caas.tenant_id"] = event.tenant_id
        span = chosen.start_span(
            f"{event.command} {event.collection or event.database}",
            kind=trace.SpanKind.CLIENT,
            start_time=end - int(event.duration_ms * 1_000_000),
            attributes=attributes,
        )
        if not event.succeeded:
            span.set_status(trace.Status(trace.StatusCode.ERROR, event.error_name or "failed"))
        span.end(end_time=end)

    return observe
