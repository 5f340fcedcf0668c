"""The benchmark's plumbing at tiny sizes: every contender runs every task, results are written.

No timing is asserted: the figures of a tiny run mean nothing, only that they exist.
"""

from __future__ import annotations

import json
from pathlib import Path

from pymongo import AsyncMongoClient

from benchmarks.odm import TASKS
from benchmarks.run import PROFILES, run
from caas_data.testing import ServerHandle

CONTENDERS = {
    "raw", "raw, task fields only", "typed floor", "beanie", "repo, shared", "repo, pro",
    "repo, enterprise", "beanie api, shared", "beanie api, pro", "beanie api, enterprise",
}  # fmt: skip


async def test_a_tiny_run_measures_every_task_of_every_contender(
    caas_server: ServerHandle, tmp_path: Path
) -> None:
    client: AsyncMongoClient = AsyncMongoClient(caas_server.uri)
    try:
        before = set(await client.list_database_names())
        report = await run(PROFILES["tiny"], caas_server.uri, tmp_path, server="test")
        left = set(await client.list_database_names()) - before
    finally:
        await client.close()
    assert not [name for name in left if name.startswith("bench")]  # dropped after the run

    for task in TASKS:
        for side in CONTENDERS:
            result = report.odm[(task, side)]
            assert result.ops_per_s > 0 and result.cpu_us_per_op >= 0, (task, side)
    assert report.odm[("find by id", "repo, tenancy off")].ops_per_s > 0
    tenancy = report.tenancy
    assert tenancy is not None
    assert set(tenancy.provision) == {"shared", "pro", "enterprise"}
    assert sorted(tenancy.resolve) == list(PROFILES["tiny"].directory_sizes)
    assert sorted(tenancy.history) == list(PROFILES["tiny"].history_sizes)
    assert "IXSCAN" in tenancy.history_plan and "COLLSCAN" not in tenancy.history_plan
    assert tenancy.overhead["on_calls"] > 0 and tenancy.overhead["off_calls"] > 0
    moves = [(move["from"], move["to"], move["documents"]) for move in tenancy.moves]
    assert moves == [("free", "pro", 50), ("pro", "enterprise", 50), ("enterprise", "free", 50)]

    # Every family that misses the floor target says where its time goes.
    for family, (ratio, task, side) in report.worst_vs_floor().items():
        if ratio > 1.15:
            assert report.gaps[family]["task"] == task and report.gaps[family]["side"] == side
            assert report.gaps[family]["lines"], family
        else:
            assert family not in report.gaps

    written = json.loads((tmp_path / "tiny.json").read_text())
    assert written["versions"]["pymongo"] and written["machine"]["cpus"]
    assert {row["contender"] for row in written["odm"]} >= CONTENDERS
    assert written["targets"] and all("met" in t for t in written["targets"])
    assert written["gaps"] == report.gaps
    markdown = (tmp_path / "tiny.md").read_text()
    assert "| bulk read |" in markdown and "### Targets" in markdown
    assert (tmp_path / "tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
