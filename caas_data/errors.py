"""The one error tree of caas_data, and the one place driver errors are translated.

```
CaasDataError
├── ConfigurationError            settings missing or wrong; layer not connected
├── TenancyError
│   ├── InvalidTenantId           also a ValueError; raised before any I/O
│   ├── TenantContextMissing      tenant data touched outside a tenant scope
│   ├── TenantNotFound            the tenant is not in the directory
│   ├── TenantMismatch            a document, filter or update names another tenant
│   ├── TenantAlreadyProvisioned  provisioned before with another tier
│   └── UnsafeOperation           the guard refuses an operation it cannot make tenant-safe
├── RepositoryError
│   ├── NotFoundError             also beanie's DocumentNotFound
│   ├── DuplicateError            a unique key is taken (possibly by a soft-deleted document);
│   │                             also pymongo's DuplicateKeyError (code 11000)
│   ├── VersionConflict           the `__v` the caller read is stale; also beanie's
│   │                             RevisionIdWasChanged
│   └── DocumentValidationError   also a ValueError; wraps pydantic's error, names the field
└── RetryableError                network errors and timeouts: the caller may try again
```

Every error carries what a log line needs: the tenant, the document type and, when one
caused it, the driver's error (also chained as ``__cause__``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pydantic
from beanie.exceptions import DocumentNotFound, RevisionIdWasChanged
from pymongo import errors as pymongo_errors

__all__ = [
    "CaasDataError",
    "ConfigurationError",
    "DocumentValidationError",
    "DuplicateError",
    "InvalidTenantId",
    "NotFoundError",
    "RepositoryError",
    "RetryableError",
    "TenancyError",
    "TenantAlreadyProvisioned",
    "TenantContextMissing",
    "TenantMismatch",
    "TenantNotFound",
    "UnsafeOperation",
    "VersionConflict",
    "translate_driver_errors",
]


_DUPLICATE_KEY = 11000


class CaasDataError(Exception):
    """Root of every error the layer raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        tenant_id: str | None = None,
        document_type: type[Any] | None = None,
        driver_error: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.tenant_id = tenant_id
        self.document_type = document_type
        self.driver_error = driver_error

    def __str__(self) -> str:
        context = []
        if self.tenant_id is not None:
            context.append(f"tenant={self.tenant_id!r}")
        if self.document_type is not None:
            context.append(f"document={self.document_type.__name__}")
        return f"{self.message} ({', '.join(context)})" if context else self.message


class ConfigurationError(CaasDataError):
    """The layer is missing a setting or is used before `connect()`."""


class TenancyError(CaasDataError):
    """Something about the tenant boundary is wrong: the operation did not run."""


class InvalidTenantId(TenancyError, ValueError):
    """A tenant id breaks the syntax rule or is reserved."""


class TenantContextMissing(TenancyError):
    """Tenant data was touched outside `tenant_scope()` (or `system_scope()`)."""


class TenantNotFound(TenancyError):
    """The tenant is not in the directory (`saas_clients`)."""


class TenantMismatch(TenancyError):
    """A document, filter, update or nested scope names a tenant other than the scope's."""


class TenantAlreadyProvisioned(TenancyError):
    """The tenant exists with another tier; moving between tiers is a separate operation."""


class UnsafeOperation(TenancyError):
    """The guard cannot make this operation tenant-safe, so it refuses it (fail closed)."""


class RepositoryError(CaasDataError):
    """A repository call failed for a reason about the data itself."""


class NotFoundError(RepositoryError, DocumentNotFound):
    """No document matched (raised by `get`; `get_or_none` returns None instead).

    Also Beanie's `DocumentNotFound`, so code written against Beanie catches it unchanged.
    """


class DuplicateError(RepositoryError, pymongo_errors.DuplicateKeyError):
    """A unique key is already taken.

    Also PyMongo's `DuplicateKeyError` (code 11000, the driver's `details` when one caused
    it), so `except DuplicateKeyError` written for Beanie or PyMongo keeps working.
    """

    def __init__(
        self,
        message: str,
        *,
        key: dict[str, Any] | None = None,
        soft_deleted: bool = False,
        **context: Any,
    ) -> None:
        super().__init__(message, **context)
        driver = self.driver_error
        details = driver.details if isinstance(driver, pymongo_errors.OperationFailure) else None
        # Give the PyMongo side its code and details; our message and __str__ stay.
        pymongo_errors.OperationFailure.__init__(self, message, _DUPLICATE_KEY, details)
        self.key = key or {}
        self.soft_deleted = soft_deleted


class VersionConflict(RepositoryError, RevisionIdWasChanged):
    """Someone else wrote the document since the caller read it; nothing was changed.

    Also Beanie's `RevisionIdWasChanged`, the error Beanie raises for a stale revision.
    """

    def __init__(
        self,
        message: str,
        *,
        expected_version: int | None = None,
        current_version: int | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, **context)
        self.expected_version = expected_version
        self.current_version = current_version


class DocumentValidationError(RepositoryError, ValueError):
    """Input does not fit the document's schema; `fields` names the offending fields."""

    def __init__(
        self,
        message: str,
        *,
        fields: tuple[str, ...] = (),
        validation_error: pydantic.ValidationError | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, **context)
        self.fields = fields
        self.validation_error = validation_error

    @classmethod
    def from_pydantic(
        cls, error: pydantic.ValidationError, **context: Any
    ) -> DocumentValidationError:
        """Name each failing field, so the message alone tells what to fix."""
        fields = tuple(".".join(str(part) for part in item["loc"]) for item in error.errors())
        details = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or '<document>'}: {item['msg']}"
            for item in error.errors()
        )
        return cls(
            f"invalid {error.title}: {details}",
            fields=fields,
            validation_error=error,
            **context,
        )


class RetryableError(CaasDataError):
    """A network error, a timeout or a transient transaction error.

    The operation may or may not have run; retrying is safe for idempotent calls.
    """


_RETRYABLE_LABELS = (
    "RetryableWriteError",
    "TransientTransactionError",
    "UnknownTransactionCommitResult",
)


def _duplicate_key(error: pymongo_errors.DuplicateKeyError) -> dict[str, Any]:
    details = error.details or {}
    key = details.get("keyValue")
    return dict(key) if isinstance(key, dict) else {}


@contextmanager
def translate_driver_errors(
    *, tenant_id: str | None = None, document_type: type[Any] | None = None
) -> Iterator[None]:
    """Turn PyMongo and pydantic errors into this tree, keeping the original as the cause."""
    context: dict[str, Any] = {"tenant_id": tenant_id, "document_type": document_type}
    try:
        yield
    except CaasDataError:
        raise
    except pydantic.ValidationError as exc:
        raise DocumentValidationError.from_pydantic(exc, **context) from exc
    except pymongo_errors.DuplicateKeyError as exc:
        key = _duplicate_key(exc)
        raise DuplicateError(
            f"duplicate key {key or exc.details}", key=key, driver_error=exc, **context
        ) from exc
    except pymongo_errors.BulkWriteError as exc:
        write_errors = exc.details.get("writeErrors", [])
        if write_errors and all(e.get("code") in (11000, 11001) for e in write_errors):
            first = write_errors[0].get("keyValue") or {}
            raise DuplicateError(
                f"duplicate key {first} ({len(write_errors)} document(s) not written)",
                key=dict(first),
                driver_error=exc,
                **context,
            ) from exc
        raise RepositoryError(f"bulk write failed: {exc}", driver_error=exc, **context) from exc
    except (pymongo_errors.ConnectionFailure, pymongo_errors.ExecutionTimeout) as exc:
        raise RetryableError(f"database unavailable: {exc}", driver_error=exc, **context) from exc
    except pymongo_errors.PyMongoError as exc:
        if exc.timeout or any(exc.has_error_label(label) for label in _RETRYABLE_LABELS):
            raise RetryableError(f"database timeout: {exc}", driver_error=exc, **context) from exc
        raise RepositoryError(f"database error: {exc}", driver_error=exc, **context) from exc
