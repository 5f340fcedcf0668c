"""The engine: connection-level mechanics (sessions and write concern, clusters, cut-offs).

The face re-exports only those, so importing any engine module never loads the layers above.
"""

from caas_data.engine.sessions import write_concern

__all__ = ["write_concern"]
