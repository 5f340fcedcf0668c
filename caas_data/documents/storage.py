"""The declarations' routing and version-safe writes, as the one object they reach them by.

`documents.base` sits below routing and writes (both read the declarations), so it reaches
them through its `DocumentStorage` seam; the `caas_data.documents` package installs
`STORAGE` when it is imported, before any declaration can be used.
"""

from __future__ import annotations

from caas_data.documents import routing, writes

__all__ = ["STORAGE", "RoutedStorage"]


class RoutedStorage:
    """`DocumentStorage` answered by `documents.routing` and `documents.writes`."""

    collection_for = staticmethod(routing.collection_for)
    run_stored_write = staticmethod(writes.run_stored_write)
    save_document = staticmethod(writes.save_document)
    set_deleted = staticmethod(writes.set_deleted)


STORAGE = RoutedStorage()
