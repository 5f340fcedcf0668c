"""A one-document write is run again after a write conflict outside a transaction, only then."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from pymongo.errors import OperationFailure

from caas_data.engine.write_conflicts import after_write_conflict, retry_write_conflicts


@dataclass
class _Session:
    in_transaction: bool


def _write(failures: list[int]) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    """A write that fails with each code of `failures` in turn, then returns "done"."""
    attempts: list[int] = []

    async def write() -> str:
        attempts.append(len(attempts))
        if len(attempts) <= len(failures):
            raise OperationFailure("failed", code=failures[len(attempts) - 1])
        return "done"

    return attempts, write


async def test_a_write_conflict_is_retried_until_the_write_goes_through() -> None:
    attempts, write = _write([112, 112])
    assert await retry_write_conflicts(write, None) == "done"
    assert len(attempts) == 3


async def test_other_failures_and_conflicts_in_a_transaction_are_raised_at_once() -> None:
    attempts, write = _write([11000])
    with pytest.raises(OperationFailure) as raised:
        await retry_write_conflicts(write, None)
    assert raised.value.code == 11000 and len(attempts) == 1
    attempts, write = _write([112])
    with pytest.raises(OperationFailure):
        await retry_write_conflicts(write, _Session(in_transaction=True))
    assert len(attempts) == 1  # the unit of work retries the transaction, not this


async def test_conflicts_without_end_give_up_after_eight_retries() -> None:
    attempts, write = _write([112] * 20)
    with pytest.raises(OperationFailure) as raised:
        await retry_write_conflicts(write, _Session(in_transaction=False))
    assert raised.value.code == 112 and len(attempts) == 9


async def test_after_a_first_attempt_made_by_the_caller() -> None:
    attempts, write = _write([112])  # after the caller's failed attempt, one more conflict
    first = OperationFailure("conflict", code=112)
    assert await after_write_conflict(first, write, None) == "done"
    assert len(attempts) == 2
    other = OperationFailure("duplicate", code=11000)
    with pytest.raises(OperationFailure) as raised:
        await after_write_conflict(other, write, None)
    assert raised.value is other
