"""Timing helpers: wall and client CPU of a batch, medians and percentiles."""

from __future__ import annotations

import asyncio
import cProfile
import gc
import pstats
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
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


# A contender's session: an async context (its tenant scope, its prepared documents) that
# yields its operation `i`.
Session = Callable[[], AbstractAsyncContextManager[Callable[[int], Awaitable[object]]]]


async def in_turns(
    count: int,
    sessions: list[Session],
    *,
    shuffle: random.Random,
    collect: bool = False,
) -> list[Sample]:
    """`count` operations of each session, the sessions taking turns operation by operation.

    The host's CPU runs at one speed for tens to hundreds of milliseconds, then at about half
    of it (measured: a fixed loop took 1.2 or 2.1 ms by phase). A batch of one contender's
    operations fell within one phase or another, so a contender's figure moved by 16-33%
    between iterations. Taking turns call by call, every contender runs in the same phases.

    Each session stays open, in a task of its own (its scope is a context variable), from
    before its first turn to after its last; only the operation itself is timed. Every round
    goes in an order of its own, drawn from `shuffle` (a rotation kept each contender behind
    the same predecessor, whose leftovers, such as the server's work after a write, it
    always inherited). `collect` runs a full garbage collection before
    every turn, untimed (for long operations: one contender must not pay for the collection
    its predecessor's garbage triggered); without it, collections fall on whichever
    operation allocates.
    """
    loop = asyncio.get_running_loop()
    inboxes: list[asyncio.Queue[tuple[int, asyncio.Future[None]] | None]] = [
        asyncio.Queue() for _ in sessions
    ]
    walls, cpus = [0.0] * len(sessions), [0.0] * len(sessions)

    async def contender(k: int) -> None:
        message = await inboxes[k].get()
        assert message is not None
        _, turn = message
        try:
            async with sessions[k]() as op:
                turn.set_result(None)
                while (message := await inboxes[k].get()) is not None:
                    i, turn = message
                    wall0, cpu0 = time.perf_counter(), time.process_time()
                    await op(i)
                    cpus[k] += time.process_time() - cpu0
                    walls[k] += time.perf_counter() - wall0
                    turn.set_result(None)
        except BaseException as error:
            if not turn.done():
                turn.set_exception(error)
            raise

    async def take_turn(k: int, i: int) -> None:
        turn = loop.create_future()
        inboxes[k].put_nowait((i, turn))
        await turn

    tasks = [asyncio.create_task(contender(k)) for k in range(len(sessions))]
    try:
        for k in range(len(sessions)):  # open every session (prepare), untimed
            await take_turn(k, -1)
        # The benchmark's own heap (data sets, results, Beanie's state) out of the collector's
        # sight: a full collection costs what the contenders allocated, not what the run kept.
        gc.collect()
        gc.freeze()
        order = list(range(len(sessions)))
        for i in range(count):
            shuffle.shuffle(order)
            for k in order:
                if collect:
                    gc.collect()
                await take_turn(k, i)
        for inbox in inboxes:
            inbox.put_nowait(None)
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        gc.unfreeze()
    return [Sample(count, wall, cpu) for wall, cpu in zip(walls, cpus, strict=True)]


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def median(values: list[float]) -> float:
    """The median (0.0 for no values)."""
    return statistics.median(values) if values else 0.0


async def python_calls(ops: int, op: Callable[[int], Awaitable[object]]) -> float:
    """Python function calls per operation (cProfile's count): steadier than CPU time.

    A coroutine counts once per resumption, so a loaded server (replies read in more pieces)
    adds a few calls to every coroutine layer: counts moved by about 1-2% between runs on a
    loaded host, against far more for CPU time. Compare counts from one run.
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
