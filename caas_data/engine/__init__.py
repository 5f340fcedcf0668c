"""The engine: connection, per-call routing, the tenant guard and transactions."""

from caas_data.engine.guard import GuardedCollection
from caas_data.engine.layer import DataLayer, UnitOfWork, active_layer, connect

__all__ = ["DataLayer", "GuardedCollection", "UnitOfWork", "active_layer", "connect"]
