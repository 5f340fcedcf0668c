"""`make bench`: every benchmark, one after the other."""

import asyncio

from benchmarks.migrations import main

asyncio.run(main())
