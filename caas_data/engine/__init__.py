"""The engine: connection, per-call routing, the tenant guard and transactions."""

from caas_data.engine.guard import GuardedCollection
from caas_data.engine.layer import DataLayer, UnitOfWork, active_layer, connect
from caas_data.engine.sessions import write_concern

__all__ = [
    "DataLayer",
    "GuardedCollection",
    "UnitOfWork",
    "active_layer",
    "connect",
    "write_concern",
]
