"""Timing helpers of the benchmark: what they call, in which order (no timing is asserted)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from benchmarks.timing import interleaved_latencies


def _recorder(name: str, calls: list[tuple[str, int]]) -> Callable[[int], Awaitable[None]]:
    async def op(i: int) -> None:
        calls.append((name, i))

    return op


async def test_ops_alternate_call_by_call_each_taking_its_turn_first() -> None:
    calls: list[tuple[str, int]] = []
    times = await interleaved_latencies(3, [_recorder("a", calls), _recorder("b", calls)])
    assert calls == [("a", 0), ("b", 0), ("b", 1), ("a", 1), ("a", 2), ("b", 2)]
    assert [len(t) for t in times] == [3, 3]
    assert all(t >= 0 for size in times for t in size)


async def test_past_the_budget_each_op_still_gets_ten_calls() -> None:
    calls: list[tuple[str, int]] = []
    ops = [_recorder(name, calls) for name in "abc"]
    times = await interleaved_latencies(50, ops, budget=0.0)
    assert [len(t) for t in times] == [10, 10, 10]
    assert len(calls) == 30
