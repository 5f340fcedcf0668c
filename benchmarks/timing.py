"""Timing helpers: wall and client CPU of a batch, medians and percentiles."""

from __future__ import annotations

import cProfile
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sample:
    """One timed batch: `ops` operations in `wall` seconds using `cpu` seconds of this process."""

    ops: int
    wall: float
    cpu: float


async def timed(ops: int, op: Callable[[int], Awaitable[object]]) -> Sample:
    """Run `op(0..ops-1)` one after the other and time the whole batch."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(ops):
        await op(i)
    return Sample(ops, time.perf_counter() - wall0, time.process_time() - cpu0)


async def latencies(
    count: int, op: Callable[[int], Awaitable[object]], *, budget: float = 60.0
) -> list[float]:
    """Wall seconds of each of `count` calls (fewer, but at least 10, past `budget` seconds)."""
    out: list[float] = []
    deadline = time.perf_counter() + budget
    for i in range(count):
        start = time.perf_counter()
        await op(i)
        out.append(time.perf_counter() - start)
        if len(out) >= 10 and time.perf_counter() > deadline:
            break
    return out


async def interleaved_latencies(
    count: int, ops: list[Callable[[int], Awaitable[object]]], *, budget: float = 60.0
) -> list[list[float]]:
    """Wall seconds of `count` calls of each op, the ops alternating call by call.

    Every op's `i`-th call runs next to the others' (in turn first), so a burst of noise on a
    shared host falls on all of them alike instead of on whichever ran during it. Fewer calls
    (at least 10 each) past `budget` seconds.
    """
    out: list[list[float]] = [[] for _ in ops]
    deadline = time.perf_counter() + budget
    for i in range(count):
        for k in range(len(ops)):
            which = (k + i) % len(ops)
            start = time.perf_counter()
            await ops[which](i)
            out[which].append(time.perf_counter() - start)
        if i >= 9 and time.perf_counter() > deadline:
            break
    return out


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def median(values: list[float]) -> float:
    """The median (0.0 for no values)."""
    return statistics.median(values) if values else 0.0


async def python_calls(ops: int, op: Callable[[int], Awaitable[object]]) -> float:
    """Python function calls per operation (cProfile's count): deterministic, unlike CPU time.

    A coroutine counts once per resumption. On a noisy host a difference of a few percent in
    CPU time drowns in the noise of the batches; the calls a path makes do not.
    """
    profile = cProfile.Profile()
    profile.enable()
    try:
        for i in range(ops):
            await op(i)
    finally:
        profile.disable()
    stats = pstats.Stats(profile)
    return sum(row[1] for row in stats.stats.values()) / ops  # type: ignore[attr-defined]
