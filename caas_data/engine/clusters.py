"""Several MongoDB clusters behind one layer: a client per cluster and a namespace budget each.

The home cluster (`HOME_CLUSTER`) holds the platform, billing and analytics databases and the
shared collections; Pro and Enterprise tenants may live on any cluster, as the directory
records. MongoDB advises keeping a replica set near or under ~10,000 collections plus indexes
(WiredTiger start-up and checkpoints degrade past that), so each cluster has a budget of
namespaces, and new Pro/Enterprise tenants are placed where there is room.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient

from caas_data.errors import CapacityExhausted, ConfigurationError

__all__ = [
    "DEFAULT_NAMESPACE_BUDGET",
    "HOME_CLUSTER",
    "ClusterConfig",
    "ClusterSet",
    "ClusterUsage",
]

HOME_CLUSTER = "home"
"""The cluster of `connect(uri=...)`: platform, billing, analytics and shared collections."""

DEFAULT_NAMESPACE_BUDGET = 10_000
"""Collections plus indexes per cluster, after MongoDB's advice for one replica set."""

_CLUSTER_NAME = r"^[a-z][a-z0-9-]{0,31}$"


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """One extra cluster given to `connect(clusters=...)`."""

    uri: str
    namespace_budget: int = DEFAULT_NAMESPACE_BUDGET


@dataclass(frozen=True, slots=True)
class ClusterUsage:
    """One line of `layer.clusters.report()`: namespaces used, the budget, the tenants."""

    name: str
    used: int
    budget: int
    tenants: tuple[str, ...] = field(default_factory=tuple)

    @property
    def room(self) -> int:
        """Namespaces still free under the budget."""
        return self.budget - self.used


def validate_cluster_name(name: str) -> str:
    """A cluster name as the directory stores it; `ConfigurationError` otherwise."""
    import re

    if not isinstance(name, str) or re.fullmatch(_CLUSTER_NAME, name) is None:
        raise ConfigurationError(f"cluster name must match {_CLUSTER_NAME}, not {name!r}")
    return name


class ClusterSet:
    """The clients of a layer, one per named cluster, and their namespace budgets."""

    def __init__(
        self,
        home: AsyncMongoClient[dict[str, Any]],
        *,
        home_budget: int = DEFAULT_NAMESPACE_BUDGET,
        others: Mapping[str, tuple[AsyncMongoClient[dict[str, Any]], int]] | None = None,
    ) -> None:
        self._clients: dict[str, AsyncMongoClient[dict[str, Any]]] = {HOME_CLUSTER: home}
        self._budgets: dict[str, int] = {HOME_CLUSTER: home_budget}
        for name, (client, budget) in (others or {}).items():
            validate_cluster_name(name)
            if name in self._clients:
                raise ConfigurationError(f"cluster {name!r} is given twice")
            self._clients[name] = client
            self._budgets[name] = budget

    @property
    def names(self) -> tuple[str, ...]:
        """Every cluster, the home cluster first."""
        return tuple(self._clients)

    def client(self, name: str) -> AsyncMongoClient[dict[str, Any]]:
        """The client of cluster `name`; `ConfigurationError` for a cluster this layer lacks."""
        try:
            return self._clients[name]
        except KeyError:
            raise ConfigurationError(
                f"cluster {name!r} is not connected (connect(clusters=...) names "
                f"{', '.join(self._clients)})"
            ) from None

    def budget(self, name: str) -> int:
        """The namespace budget of cluster `name`."""
        self.client(name)
        return self._budgets[name]

    def choose(self, usages: Iterable[ClusterUsage], cost: int, *, tenant_id: str) -> str:
        """The cluster with the most room that still fits `cost` namespaces.

        Raises:
            CapacityExhausted: no cluster has room for `cost` more namespaces.
        """
        fitting = [u for u in usages if u.room >= cost]
        if not fitting:
            raise CapacityExhausted(
                f"no cluster has room for {cost} more namespaces (collections + indexes); "
                "connect another cluster or raise a namespace budget",
                tenant_id=tenant_id,
            )
        return max(fitting, key=lambda u: (u.room, u.name == HOME_CLUSTER)).name

    async def close(self) -> None:
        """Close every client."""
        for client in self._clients.values():
            await client.close()
