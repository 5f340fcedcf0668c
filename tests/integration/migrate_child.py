"""Run by test_migrations as a subprocess: migrate slowly, printing a line after each batch.

The test SIGKILLs it between batches and checks that a second run finishes the work.
"""

from __future__ import annotations

import asyncio
import sys

from caas_data.operations import migrate
from caas_data.testing.helpers import connect_for_tests
from tests.integration.migration_fixtures import DOCUMENTS


async def main(uri: str, prefix: str) -> None:
    layer = await connect_for_tests(uri, documents=DOCUMENTS, database_prefix=prefix)

    async def slowly(tenant_id: str, moved: int) -> None:
        print(f"batch {tenant_id} {moved}", flush=True)
        await asyncio.sleep(2)

    await migrate(layer, batch_size=2, concurrency=1, on_progress=slowly)
    print("finished", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
