"""The `caas-data` command (Typer, rich progress): `pip install 'caas-data[cli]'`."""

from caas_data.cli import (
    moves,  # noqa: F401  (registers `tenants move` and `move-pending`)
    users,  # noqa: F401  (registers `users export` and `users erase`)
)
from caas_data.cli.app import app, main

__all__ = ["app", "main"]
