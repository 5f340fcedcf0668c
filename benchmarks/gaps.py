"""Where a missed target's time goes: the worst cell and the typed floor, under cProfile.

A ratio says by how much a target is missed; issue 16 also asks which profile line holds the
time. Both contenders run the same operations of the task under `cProfile`, and the functions
whose own time per operation exceeds the floor's the most are the answer. cProfile's cost per
call inflates Python-heavy lines: read the figures as a ranking of where the extra work is,
not as timings.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.odm import OdmRun, Side

__all__ = ["GapLine", "explain_gap", "profile_task"]

# (calls per operation, own seconds per operation) by function
Profile = dict[str, tuple[float, float]]


@dataclass(frozen=True)
class GapLine:
    """One function and what it costs the contender per operation beyond the floor."""

    where: str
    extra_us: float
    extra_calls: float


def _label(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    if filename == "~":  # a builtin
        return function
    for marker in ("site-packages/", "/caas_data/", "/benchmarks/", "/lib/python3"):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            filename = tail if marker == "site-packages/" else marker.strip("/") + "/" + tail
            break
    return f"{filename}:{line}({function})"


async def profile_task(odm: OdmRun, side: Side, task: str) -> Profile:
    """`odm.ops` operations of a single-document `task` by `side`, profiled."""
    async with side.scope():
        prepared = await odm.prepare_for(side, task)
        operation = odm.op(side, task, prepared)
        # CPU time, as the targets are: waiting for the server (epoll) is no one's cost.
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        try:
            for i in range(odm.ops):
                await operation(i)
        finally:
            profiler.disable()
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    return {_label(key): (row[1] / odm.ops, row[2] / odm.ops) for key, row in stats.items()}


def top_gap(contender: Profile, floor: Profile, top: int) -> list[GapLine]:
    """The `top` functions whose own time per operation exceeds the floor's the most."""
    lines = []
    for where, (calls, seconds) in contender.items():
        floor_calls, floor_seconds = floor.get(where, (0.0, 0.0))
        extra = seconds - floor_seconds
        if extra > 0:
            lines.append(GapLine(where, extra * 1e6, calls - floor_calls))
    lines.sort(key=lambda line: -line.extra_us)
    return lines[:top]


async def explain_gap(
    odm: OdmRun, side: Side, floor: Side, task: str, *, top: int = 6
) -> list[GapLine]:
    """Which functions hold `side`'s extra time over `floor` on `task`."""
    contender = await profile_task(odm, side, task)
    return top_gap(contender, await profile_task(odm, floor, task), top)
