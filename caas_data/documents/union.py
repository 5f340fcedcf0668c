"""Beanie's `UnionDoc`, routed per call like the documents stored in it.

Beanie binds a `UnionDoc` to one collection of the database `init_beanie` was given (the
platform database); its members route per call. `TenantUnionDoc` answers
`get_pymongo_collection()` the way its members do, so `Union.find()` reads the tenant's
placement and gets the members' guard rules.
"""

from __future__ import annotations

from typing import Any

from beanie import UnionDoc

from caas_data.documents.routing import collection_for
from caas_data.errors import ConfigurationError

__all__ = ["TenantUnionDoc"]


class TenantUnionDoc(UnionDoc):
    """A union of documents in one collection, at the running scope's placement."""

    @classmethod
    def get_pymongo_collection(cls) -> Any:
        """The collection of the union's members, resolved from the running scope."""
        members = list((cls._document_models or {}).values())
        if not members:
            raise ConfigurationError(
                f"{cls.__name__} has no member documents: init them (their Settings.union_doc) "
                "with the layer first"
            )
        return collection_for(members[0])
