"""Beanie's `View`, read at the running scope's placement."""

from __future__ import annotations

from typing import Any

from beanie import View

from caas_data.documents.routing import collection_for
from caas_data.errors import ConfigurationError
from caas_data.tenancy.views import ViewCollection

__all__ = ["TenantView"]


class TenantView(View):
    """A Beanie view whose pipeline runs on its source document's routed collection.

    Declare `Settings.source` as the document class (not a collection name): the view
    follows that class's routing and guard rules in every isolation model.
    """

    @classmethod
    def get_pymongo_collection(cls) -> Any:
        """The view's reads, on its source's collection in the running scope."""
        settings = cls.get_settings()
        # Beanie keeps only the source's collection name; the declaration names the class.
        source = getattr(getattr(cls, "Settings", None), "source", None)
        if not isinstance(source, type):
            raise ConfigurationError(
                f"{cls.__name__}: Settings.source must be a document class to be routed",
                document_type=cls,
            )
        return ViewCollection(collection_for(source), settings.pipeline)
