"""History pages read in bounded `seq` windows, so a page costs the same in any conversation.

A history page is "the `limit + 1` messages just before (or after) a `seq`". Real MongoDB
serves `{conversation_id, seq: {$lt: n}}` sorted by `seq` from the index and stops after
`limit + 1` keys. A server that does not push the limit into the scan (the embedded server
plans SORT > FETCH > IXSCAN and examines every key of the range) makes the page cost grow with
the conversation: 13 s a page at 100,000 messages here (issue 16).

Message seqs are dense per conversation (a counter hands them out), so the page is read in
windows of seqs, each a bounded index range: first `limit + 1` seqs wide, then doubling, until
the page is full or no seq is left on that side. Windows are disjoint and read in page order,
so the result is exactly the unbounded query's, gaps (purged messages, lost numbers) or not;
only the number of round trips depends on them. The window that reaches past the counter's
value (the newest page, or paging forward) has no bound on that side: a message stored with a
seq the counter never handed out (written around the layer) is still found.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = ["seq_windows"]

Fetch = Callable[[dict[str, Any], int], Awaitable[list[Mapping[str, Any]]]]


async def seq_windows(
    fetch: Fetch,
    base: dict[str, Any],
    *,
    before: int | None,
    after: int | None,
    top: Callable[[], Awaitable[int]],
    want: int,
) -> list[Mapping[str, Any]]:
    """Up to `want` stored messages matching `base`, next to `before`/`after`, in page order.

    `fetch(query, limit)` runs one guarded find sorted by `seq` in page order (descending
    unless `after` is given); `top()` is the conversation counter's value, read only when the
    page starts at the newest message or pages forward.
    """
    found: list[Mapping[str, Any]] = []
    width = want
    if after is None:
        upper = before if before is not None else await top() + 1
        open_above = before is None
        while len(found) < want:
            lower = upper - width
            bounds: dict[str, Any] = {"$gte": lower} if lower > 1 else {}
            if not open_above:
                bounds["$lt"] = upper
            query = {**base, "seq": bounds} if bounds else dict(base)
            found += await fetch(query, want - len(found))
            if lower <= 1:
                break
            upper, open_above, width = lower, False, width * 2
        return found
    newest = await top()
    lower = after
    while len(found) < want:
        upper = lower + width
        bounds = {"$gt": lower}
        if upper <= newest:
            bounds["$lte"] = upper
        found += await fetch({**base, "seq": bounds}, want - len(found))
        if upper > newest:
            break
        lower, width = upper, width * 2
    return found
