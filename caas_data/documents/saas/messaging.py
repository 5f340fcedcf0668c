"""Seed area saas/messaging: placeholder until its issue lands."""

from __future__ import annotations

from caas_data.documents.base import BaseDocument

__all__ = ["DOCUMENTS"]

DOCUMENTS: tuple[type[BaseDocument], ...] = ()
