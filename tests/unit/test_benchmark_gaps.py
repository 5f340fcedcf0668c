"""A missed floor target names the profile lines that hold the time (issue 16).

No timing is asserted: the contender does measurably more work in one named function, and
that function must rank first; the report must carry the lines into the target it explains.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.gaps import explain_gap
from benchmarks.odm import OdmRun, Side, TaskResult
from benchmarks.report import Report
from benchmarks.timing import Sample


def _share(data: dict[str, Any]) -> int:
    return len(data)


def _extra_work(data: dict[str, Any]) -> int:
    total = 0
    for i in range(20_000):  # own time, in this frame
        total += i % 7
    for _ in range(200):
        total += _share(data)
    return total


class Floor(Side):
    name = "typed floor"

    async def create(self, shape: str, data: dict[str, Any]) -> Any:
        return _share(data)


class Heavier(Side):
    name = "beanie api, shared"

    async def create(self, shape: str, data: dict[str, Any]) -> Any:
        return _share(data) + _extra_work(data)


async def test_the_function_doing_the_extra_work_ranks_first() -> None:
    floor, heavier = Floor(), Heavier()
    odm = OdmRun([floor, heavier], ops=20, bulk_docs=0)
    lines = await explain_gap(odm, heavier, floor, "small create", top=3)
    assert lines, "a contender doing more work shows lines above the floor"
    assert lines[0].where.endswith("(_extra_work)")
    assert lines[0].extra_calls == 1
    share = next(line for line in lines if "(_share)" in line.where)
    assert share.extra_calls == 200  # 201 calls per operation against the floor's one


def _result(cpu_us: float) -> TaskResult:
    return TaskResult(1.0, cpu_us, None, [Sample(1, 1.0, cpu_us / 1e6)])


def test_a_missed_target_carries_its_profile_lines() -> None:
    report = Report("unit", {}, {}, {})
    for task in ("small create", "find by id"):
        report.odm[(task, "raw")] = _result(100.0)
        report.odm[(task, "typed floor")] = _result(100.0)
        report.odm[(task, "beanie")] = _result(200.0)
        report.odm[(task, "repo, shared")] = _result(105.0)
        report.odm[(task, "beanie api, shared")] = _result(150.0 if task == "find by id" else 110.0)
    worst = report.worst_vs_floor()
    assert worst["beanie api"] == (pytest.approx(1.5), "find by id", "beanie api, shared")
    assert worst["repo"][0] == pytest.approx(1.05)
    report.gaps["beanie api"] = {
        "task": "find by id",
        "side": "beanie api, shared",
        "lines": [{"where": "beanie/odm/queries/find.py:1049(_find_one)", "extra_us": 4.25,
                   "extra_calls": 4.0}],
    }  # fmt: skip
    targets = {t.name: t for t in report.targets()}
    api = targets["single documents within 1.15x of the typed floor (beanie api)"]
    assert not api.met
    assert "missed by 30%" in api.detail
    assert "`beanie/odm/queries/find.py:1049(_find_one)` +4.2 us (+4 calls)" in api.detail
    repo = targets["single documents within 1.15x of the typed floor (repo)"]
    assert repo.met and "cProfile" not in repo.detail
    assert not [name for name in targets if "bulk" in name]  # no bulk read in this run
