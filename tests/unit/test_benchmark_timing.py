"""Timing helpers of the benchmark: what they call, in which order (no timing is asserted)."""

from __future__ import annotations

import contextlib
import contextvars
import gc
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from benchmarks.timing import Session, in_turns, interleaved_latencies


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


def _sessions(
    names: str, calls: list[tuple[str, int]], opened: list[str], *, failing: str = ""
) -> list[Session]:
    def session(name: str) -> Session:
        @contextlib.asynccontextmanager
        async def opened_session() -> AsyncIterator[Callable[[int], Awaitable[None]]]:
            opened.append(f"open {name}")
            token = _WHO.set(name)
            try:

                async def op(i: int) -> None:
                    if name == failing and i == 1:
                        raise RuntimeError(f"{name} failed")
                    calls.append((_WHO.get(), i))

                yield op
            finally:
                _WHO.reset(token)
                opened.append(f"close {name}")

        return opened_session

    return [session(name) for name in names]


_WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who")


def _drawn_rounds(names: str, count: int, *, seed: int) -> list[tuple[str, int]]:
    """The calls `in_turns` makes with `random.Random(seed)`: each round's order, in turn."""
    generator, order, calls = random.Random(seed), list(range(len(names))), []
    for i in range(count):
        generator.shuffle(order)
        calls += [(names[k], i) for k in order]
    return calls


async def test_sessions_take_turns_op_by_op_each_in_its_own_context() -> None:
    calls: list[tuple[str, int]] = []
    opened: list[str] = []
    samples = await in_turns(3, _sessions("abc", calls, opened), shuffle=random.Random(1))
    # every round in the order the seeded generator draws; each op in its own session's context
    assert calls == _drawn_rounds("abc", 3, seed=1)
    # every session opens before the first timed op and closes after its last
    assert opened[:3] == ["open a", "open b", "open c"]
    assert sorted(opened[3:]) == ["close a", "close b", "close c"]
    assert [s.ops for s in samples] == [3, 3, 3]
    assert all(s.cpu >= 0 and s.wall >= 0 for s in samples)
    assert _WHO.get("nobody") == "nobody"  # the caller's context is untouched
    assert gc.get_freeze_count() == 0  # the heap frozen for the turns is handed back


async def test_a_failing_op_raises_and_closes_every_session() -> None:
    calls: list[tuple[str, int]] = []
    opened: list[str] = []
    with pytest.raises(RuntimeError, match="b failed"):
        await in_turns(3, _sessions("ab", calls, opened, failing="b"), shuffle=random.Random(2))
    # round 0 whole, then round 1 up to b, which fails: nothing runs after it
    drawn = _drawn_rounds("ab", 3, seed=2)
    assert calls == drawn[: drawn.index(("b", 1))]
    assert sorted(opened) == ["close a", "close b", "open a", "open b"]
    assert gc.get_freeze_count() == 0


async def test_a_session_that_cannot_open_raises() -> None:
    @contextlib.asynccontextmanager
    async def broken() -> AsyncIterator[Callable[[int], Awaitable[None]]]:
        raise LookupError("no such tenant")
        yield _recorder("never", [])  # pragma: no cover

    calls: list[tuple[str, int]] = []
    opened: list[str] = []
    with pytest.raises(LookupError, match="no such tenant"):
        await in_turns(2, [*_sessions("a", calls, opened), broken], shuffle=random.Random(0))
    assert calls == [] and sorted(opened) == ["close a", "open a"]


async def test_shuffled_rounds_give_every_session_one_turn_each() -> None:
    calls: list[tuple[str, int]] = []
    opened: list[str] = []
    await in_turns(20, _sessions("abcd", calls, opened), shuffle=random.Random(3))
    rounds = [[name for name, i in calls if i == r] for r in range(20)]
    assert all(sorted(names) == list("abcd") for names in rounds)
    # the order changes between rounds: no session always follows the same one
    assert len({tuple(names) for names in rounds}) > 1
    followers = {names[names.index("a") + 1] for names in rounds if names[-1] != "a"}
    assert len(followers) > 1
