"""`make load`: the long load profile, printing rates, ratios and latency percentiles.

1. Hot group: 50 senders into one conversation vs 50 senders over 50 conversations, same
   run; prints the ratio of their send rates (target >= 0.5).
2. 200 concurrent tasks over 10 tenants (all three isolation models), mixed reads and
   writes; prints ops/s and p50/p99 per operation.
Afterwards, from a raw client: every acknowledged message exactly once, seqs 1..N, no
document carries another tenant's id, no read returned another tenant's data, and the
process's peak memory before and after a second round.

Usage: `python -m benchmarks.load [--sends N] [--rounds N]` (the server is chosen as for the
tests: `CAAS_MONGODB_URI`, else the embedded one).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys

from caas_data import Tier
from caas_data.testing import connect_for_tests, drop_prefix_databases, new_tenant_id
from caas_data.testing._server import start_test_server
from caas_data.testing.load import hot_versus_spread, mixed_tenants
from caas_data.testing.load_checks import check_acknowledged


async def main(sends: int, operations: int, rounds: int) -> int:
    server = start_test_server()
    layer = await connect_for_tests(server.handle.uri)
    problems: list[str] = []
    try:
        tenant = new_tenant_id("hot")
        await layer.tenants.provision(tenant, tier=Tier.PRO)
        hot, spread = await hot_versus_spread(layer, tenant, senders=50, sends_each=sends)
        print(hot.report("hot: 50 senders, 1 conversation"))
        print(spread.report("spread: 50 senders, 50 conversations"))
        hot_rate = len(hot.acks) / hot.seconds
        spread_rate = len(spread.acks) / spread.seconds
        print(f"send rate hot/spread = {hot_rate:.0f}/{spread_rate:.0f} = "
              f"{hot_rate / spread_rate:.2f} (target >= 0.5)")  # fmt: skip
        problems += await check_acknowledged(layer, hot.acks + spread.acks)

        tiers = [Tier.FREE, Tier.STARTER, Tier.PRO, Tier.ENTERPRISE] * 3
        tenants = []
        for tier in tiers[:10]:
            tenants.append(new_tenant_id("mix"))
            await layer.tenants.provision(tenants[-1], tier=tier)
        peaks = []
        for round_number in range(rounds):
            mixed = await mixed_tenants(
                layer, tenants, tasks=200, operations_each=operations, seed=round_number
            )
            print(mixed.report(f"mixed round {round_number + 1}: 200 tasks, 10 tenants"))
            problems += mixed.foreign_reads
            problems += await check_acknowledged(layer, mixed.acks, tenants=tenants)
            peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        print("peak RSS after each round (KiB):", peaks)
    finally:
        await drop_prefix_databases(layer)
        await layer.close()
        server.stop()
    for problem in problems:
        print("PROBLEM:", problem)
    print("checks:", "ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=20, help="sends per hot/spread sender")
    parser.add_argument("--operations", type=int, default=25, help="operations per mixed task")
    parser.add_argument("--rounds", type=int, default=2, help="mixed rounds (memory check)")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.sends, args.operations, args.rounds)))
