"""`python -m benchmarks [--profile quick|full|tiny] [--out DIR]` (`make bench`, `make bench-full`).

Uses `CAAS_MONGODB_URI` when set, else starts the embedded server (with `--cache-size 2G`
unless `CAAS_EMBEDDED_ARGS` says otherwise) and stops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
from pathlib import Path

from benchmarks.run import DEFAULT_CACHE, PROFILES, run
from caas_data.testing import TestServer


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--tasks", help="comma-separated ODM tasks to run (default: all)")
    parser.add_argument("--sides", help="regex: only the layer's contenders whose name matches")
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    if args.tasks:
        profile = dataclasses.replace(profile, tasks=tuple(args.tasks.split(",")))
    if args.sides:
        profile = dataclasses.replace(profile, sides=args.sides)
    uri = os.environ.get("CAAS_MONGODB_URI")
    if uri:
        report = asyncio.run(run(profile, uri, args.out, server="CAAS_MONGODB_URI"))
    else:
        os.environ.setdefault("CAAS_EMBEDDED_ARGS", DEFAULT_CACHE)
        os.environ.setdefault("CAAS_TEST_SERVER", "embedded")
        with TestServer() as handle:
            report = asyncio.run(run(profile, handle.uri, args.out, server="embedded SecantusDB"))
    print(report.markdown())
    print(f"written to {args.out}/{profile.name}.md, .json, .png")


if __name__ == "__main__":
    main()
