"""The `caas-data` command (Typer, rich progress): `pip install 'caas-data[cli]'`."""

from caas_data.cli.app import app, main

__all__ = ["app", "main"]
