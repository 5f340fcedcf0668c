"""The one error tree of caas_data (driver errors are translated into it by driver_errors.py).

```
CaasDataError
├── ConfigurationError            settings missing or wrong; layer not connected
│   ├── MissingDependencyError    an optional package is absent; also an ImportError
│   └── CapacityExhausted         no cluster has namespace room for a new tenant
├── TenancyError
│   ├── InvalidTenantId           also a ValueError; raised before any I/O
│   ├── TenantContextMissing      tenant data touched outside a tenant scope
│   ├── TenantNotFound            the tenant is not in the directory
│   ├── TenantMismatch            a document, filter or update names another tenant;
│   │                             an operator operation runs inside a tenant scope
│   ├── TenantAlreadyProvisioned  provisioned before with another tier
│   │   └── TenantIdRetained      a deprovisioned id still owns rows; `retained` names them
│   ├── UnsafeOperation           the guard refuses an operation it cannot make tenant-safe
│   ├── OperationRefused          an operator operation refused before it changed anything:
│   │                             no confirmation, a placement not empty, a manifest that
│   │                             does not match its files, a feature not built yet
│   └── MoveVerificationFailed    a moved collection's count or checksum differs; nothing switched
├── RepositoryError
│   ├── NotFoundError             also beanie's DocumentNotFound
│   ├── DuplicateError            a unique key is taken (possibly by a soft-deleted document);
│   │   │                         also pymongo's DuplicateKeyError (code 11000)
│   │   └── BulkDuplicateError    the same, stopping a bulk write; also pymongo's BulkWriteError
│   ├── VersionConflict           the `__v` the caller read is stale; also beanie's
│   │                             RevisionIdWasChanged
│   ├── AuditChainBroken          an audit chain does not check out against its anchor
│   ├── SchemaVersionError        a stored document's `schema_version` has no way to this
│                                 code's version (no upcaster, or written by newer code)
│   └── DocumentValidationError   also a ValueError; wraps pydantic's error, names the field;
│                                 also what BSON cannot encode (over 16 MB, NUL in a key,
│                                 an int beyond 64 bits, an unencodable type)
├── FieldEncryptionError          a field could not be encrypted or decrypted
│   └── TenantKeyErased           the tenant's data key is gone: its ciphertext is unreadable
└── RetryableError                network errors and timeouts: the caller may try again
    ├── WriteOutcomeUnknown       the write may or may not have been applied (a write-concern
    │                             error, a commit whose result never came back): retry only
    │                             with an idempotency key (`client_message_id`...)
    └── TenantMoving              the write hit a placement fenced by a tenant move
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
    "AuditChainBroken",
    "BulkDuplicateError",
    "CaasDataError",
    "CapacityExhausted",
    "ConfigurationError",
    "DocumentValidationError",
    "DuplicateError",
    "FieldEncryptionError",
    "InvalidTenantId",
    "MissingDependencyError",
    "MoveVerificationFailed",
    "NotFoundError",
    "OperationRefused",
    "RepositoryError",
    "RetryableError",
    "SchemaVersionError",
    "TenancyError",
    "TenantAlreadyProvisioned",
    "TenantContextMissing",
    "TenantIdRetained",
    "TenantKeyErased",
    "TenantMismatch",
    "TenantMoving",
    "TenantNotFound",
    "UnsafeOperation",
    "VersionConflict",
    "WriteOutcomeUnknown",
    "optional_dependency",
]


_DUPLICATE_KEY = 11000
ROOT_FIELD = "__root__"  # `fields` entry of a model-level validator's failure


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
        # Exception's own init, not the next class's: an error that is also a driver or
        # Beanie error (DuplicateError, BulkDuplicateError...) sets that side up itself.
        Exception.__init__(self, message)
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


class MissingDependencyError(ConfigurationError, ImportError):
    """A feature needs an optional package that is not installed; names the extra to install.

    Also an `ImportError`, so `import caas_data.fastapi` without FastAPI fails the way Python
    code expects an absent optional dependency to fail.

    Attributes:
        package: The import name that is missing (``argon2``).
        extra: The caas-data extra that installs it (``security``).
    """

    def __init__(self, package: str, *, extra: str, feature: str, hint: str = "") -> None:
        super().__init__(
            f"{feature} needs the optional package {package!r}, which is not installed: "
            f"pip install 'caas-data[{extra}]'" + (f" ({hint})" if hint else "")
        )
        self.package = package
        self.extra = extra
        self.name = package  # ImportError's attribute: the module that could not be imported


@contextmanager
def optional_dependency(package: str, *, extra: str, feature: str) -> Iterator[None]:
    """Turn a failed import of an optional package into `MissingDependencyError`.

    Wrap the import at the place that uses the package, so `import caas_data` never needs it:

    ```python
    with optional_dependency("argon2", extra="security", feature="admin passwords"):
        from argon2 import PasswordHasher
    ```
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        # A missing module of the package itself or of one of its own dependencies: either
        # way, installing the extra is the fix. Any other module is a bug, not a missing extra.
        missing = (exc.name or "").split(".")[0]
        if missing != package.split(".")[0] and not _belongs_to(exc, package):
            raise
        raise MissingDependencyError(package, extra=extra, feature=feature) from exc


def _belongs_to(error: ModuleNotFoundError, package: str) -> bool:
    """Whether the failed import happened while importing `package` (a broken install)."""
    tb = error.__traceback__
    root = package.split(".")[0]
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module == root or module.startswith(root + "."):
            return True
        tb = tb.tb_next
    return False


class TenancyError(CaasDataError):
    """Something about the tenant boundary is wrong: the operation did not run."""


class InvalidTenantId(TenancyError, ValueError):
    """A tenant id breaks the syntax rule or is reserved."""


class TenantContextMissing(TenancyError):
    """Tenant data was touched outside `tenant_scope()` (or `system_scope()`)."""


class TenantNotFound(TenancyError):
    """The tenant is not in the directory (`saas_clients`)."""


class TenantMismatch(TenancyError):
    """A document, filter, update or nested scope names a tenant other than the scope's.

    Also raised when an operator operation (provision, deprovision) runs in a tenant scope.
    """


class TenantAlreadyProvisioned(TenancyError):
    """The tenant id is taken.

    The tenant exists with another tier (moving between tiers is a separate operation), or a
    former tenant's rows remain under the id (`TenantIdRetained`).
    """


class TenantIdRetained(TenantAlreadyProvisioned):
    """The id is not live, but rows of a former tenant under it remain (or its tombstone).

    Provisioning it would hand them to the new tenant. `retained` maps each
    `database.collection` to its row count; `provision(..., reuse_id="purge_retained")` removes
    them first.
    """

    def __init__(self, message: str, *, retained: dict[str, int], **context: Any) -> None:
        super().__init__(message, **context)
        self.retained = dict(retained)


class UnsafeOperation(TenancyError):
    """The guard cannot make this operation tenant-safe, so it refuses it (fail closed)."""


class OperationRefused(TenancyError):
    """An operator operation (erase, import, move...) refused before it changed anything."""


class MoveVerificationFailed(TenancyError):
    """A copied collection does not match its source (count or checksum): nothing switched."""


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


class BulkDuplicateError(DuplicateError, pymongo_errors.BulkWriteError):
    """A bulk write stopped on a taken unique key.

    Also PyMongo's `BulkWriteError` (what Beanie's `BulkWriter` users catch), with the
    driver's `details` (`writeErrors`, `nInserted`...) when one caused it.
    """


class AuditChainBroken(RepositoryError):
    """An audit chain does not check out; retention will not delete entries it cannot vouch for.

    `verify_chain()` reports the same defects without raising; this is raised by writes that
    would otherwise erase the evidence.
    """

    def __init__(self, message: str, *, broken_seq: int | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.broken_seq = broken_seq


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


class SchemaVersionError(RepositoryError):
    """A stored document's `schema_version` cannot be read by this code.

    Older than the class with no declared step (upcaster) to bridge it, or newer than the
    class (written by newer code). `stored` and `current` are the two versions.
    """

    def __init__(self, message: str, *, stored: object, current: int, **context: Any) -> None:
        super().__init__(message, **context)
        self.stored = stored
        self.current = current


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
        """Name each failing field, so the message alone tells what to fix.

        A model-level validator's failure has no field: it is named `__root__` (the whole
        document), never an empty string.
        """
        errors = error.errors()
        fields = tuple(".".join(str(part) for part in e["loc"]) or ROOT_FIELD for e in errors)
        whole = f"{ROOT_FIELD} ({error.title} as a whole)"
        details = "; ".join(
            f"{whole if name == ROOT_FIELD else name}: {e['msg']}"
            for name, e in zip(fields, errors, strict=True)
        )
        return cls(
            f"invalid {error.title}: {details}",
            fields=fields,
            validation_error=error,
            **context,
        )


class FieldEncryptionError(CaasDataError):
    """A declared field could not be encrypted or decrypted with the tenant's data key."""


class TenantKeyErased(FieldEncryptionError):
    """The ciphertext names a data key that is not the tenant's (live) key: it was erased.

    Crypto-shredding at work: the tenant's encrypted fields are unreadable for good.
    """


class RetryableError(CaasDataError):
    """A network error, a timeout or a transient transaction error.

    The operation may or may not have run; retrying is safe for idempotent calls.
    """


class WriteOutcomeUnknown(RetryableError):
    """The write may have been applied, but its durability (or outcome) was not confirmed.

    A write-concern error (the primary applied the write, the requested acknowledgement did
    not come) or a commit whose answer was lost. Re-running is safe only for calls with an
    idempotency key (a send's `client_message_id`, an audit append's `idempotency_key`, a
    usage report's key): they find the first attempt instead of applying it twice.
    """


class TenantMoving(RetryableError):
    """The write reached a placement that a tenant move has fenced; nothing was written.

    The tenant is being moved, or was moved and this scope resolved it before the switch:
    run the write again in a new scope, which routes to the new placement.
    """


class CapacityExhausted(ConfigurationError):
    """No connected cluster has namespace room for another Pro or Enterprise tenant."""
