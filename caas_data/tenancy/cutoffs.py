"""The checks every retention call's arguments pass before any I/O.

A retention call deletes what is older than its cutoff. A cutoff in the future deletes
everything (the audit trail lost every entry that way), and a naive datetime is read by the
server as UTC whatever the caller meant, so both are refused here, in one place, by every
entry point that deletes by age (repositories, the retention service, the guard).
"""

from __future__ import annotations

from datetime import UTC, datetime

from caas_data.errors import DocumentValidationError

__all__ = ["retention_cutoff", "retention_limit"]


def retention_cutoff(cutoff: object, *, name: str = "cutoff") -> datetime:
    """Check a retention cutoff and return it in UTC.

    Args:
        cutoff: the moment before which entries are deleted.
        name: the argument's name, for the error message.

    Raises:
        DocumentValidationError: `cutoff` is not a datetime, is naive, or is in the future.
    """
    if not isinstance(cutoff, datetime):
        raise DocumentValidationError(
            f"{name} must be a timezone-aware datetime, not {type(cutoff).__name__}",
            fields=(name,),
        )
    if cutoff.tzinfo is None or cutoff.utcoffset() is None:
        raise DocumentValidationError(
            f"{name} must be timezone-aware (a naive datetime is ambiguous): {cutoff!r}",
            fields=(name,),
        )
    now = datetime.now(UTC)  # full precision: a cutoff of "now" itself is not ahead
    if cutoff > now:  # no leeway: a cutoff even 1 s ahead deletes the newest entries too
        raise DocumentValidationError(
            f"{name} {cutoff.isoformat()} is in the future (now {now.isoformat()}): "
            "retention only deletes what is already older than a past moment",
            fields=(name,),
        )
    return cutoff.astimezone(UTC)


def retention_limit(limit: object, *, name: str = "limit") -> int | None:
    """Check a retention batch bound: None (no bound) or a positive int below 2**63.

    Raises:
        DocumentValidationError: anything else (a bool, zero, a negative or huge number).
    """
    if limit is None:
        return None
    if type(limit) is not int or not 1 <= limit < 2**63:
        raise DocumentValidationError(
            f"{name} must be a positive int or None, not {limit!r}", fields=(name,)
        )
    return limit
