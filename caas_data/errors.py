"""The one error tree of caas_data, and the one place driver errors are translated.

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
from types import TracebackType
from typing import Any

import pydantic
from beanie.exceptions import DocumentNotFound, RevisionIdWasChanged
from bson import errors as bson_errors
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
    "secret_fields",
    "translate_driver_errors",
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


_RETRYABLE_LABELS = (
    "RetryableWriteError",
    "TransientTransactionError",
    "UnknownTransactionCommitResult",
)


# ShutdownInProgress, InterruptedAtShutdown, InterruptedDueToReplStateChange: the server goes
# away or steps down; the same call can succeed once it (or a new primary) is back.
_SHUTDOWN_CODES = frozenset({91, 11600, 11602})


def _duplicate_key(error: pymongo_errors.DuplicateKeyError) -> dict[str, Any]:
    details = error.details or {}
    key = details.get("keyValue")
    return dict(key) if isinstance(key, dict) else {}


# What the caller handed in and BSON cannot encode (DocumentTooLarge is an InvalidDocument).
_UNENCODABLE = (bson_errors.InvalidDocument, bson_errors.InvalidStringData, bson_errors.InvalidId)

# The packages whose code encodes documents: an OverflowError raised there is an int that BSON
# cannot hold; one raised anywhere else is a bug of its own and keeps its type.
_ENCODER_PACKAGES = frozenset({"bson", "pymongo"})


def _raised_by_encoder(error: BaseException) -> bool:
    """Whether the innermost frame of `error` is the driver's (the C encoder's caller)."""
    traceback: TracebackType | None = error.__traceback__
    frame = None
    while traceback is not None:
        frame = traceback.tb_frame
        traceback = traceback.tb_next
    if frame is None:
        return False
    module = str(frame.f_globals.get("__name__", ""))
    return module.split(".", 1)[0] in _ENCODER_PACKAGES


def secret_fields(document_type: type[Any] | None) -> frozenset[str]:
    """The fields of `document_type` declared `repr=False`: secrets, kept out of error texts."""
    fields = getattr(document_type, "model_fields", None)
    if not isinstance(fields, dict):
        return frozenset()
    names = set()
    for name, info in fields.items():
        if getattr(info, "repr", True) is False:
            names.add(name)
            if getattr(info, "alias", None):
                names.add(info.alias)
    return frozenset(names)


def _redacted(key: dict[str, Any], secrets: frozenset[str]) -> dict[str, Any]:
    return {k: "<redacted>" if k in secrets else v for k, v in key.items()}


def translate_driver_errors(
    *, tenant_id: str | None = None, document_type: type[Any] | None = None
) -> DriverErrorTranslation:
    """Turn PyMongo, BSON and pydantic errors into this tree, keeping the original as the cause.

    What BSON cannot encode (`DocumentTooLarge`, `InvalidDocument`, an `OverflowError` raised
    by the encoder) is the caller's input, so it becomes a `DocumentValidationError`. An error
    whose text would show a secret field's value is raised without its cause.
    """
    return DriverErrorTranslation(tenant_id, document_type)


class DriverErrorTranslation:
    """The context manager `translate_driver_errors` returns.

    A plain class rather than a `@contextmanager`: it wraps every database call and every
    document read, where a generator-based context manager cost about 3 us a use (issue 16).
    """

    __slots__ = ("_context",)

    def __init__(self, tenant_id: str | None, document_type: type[Any] | None) -> None:
        self._context: dict[str, Any] = {"tenant_id": tenant_id, "document_type": document_type}

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, CaasDataError):
            return
        translated = _translate(exc, self._context)
        if translated is None:
            return
        error, chained = translated
        if chained:
            raise error from exc
        raise error from None


def _translate(exc: BaseException, context: dict[str, Any]) -> tuple[CaasDataError, bool] | None:
    """The error of this tree that `exc` means, and whether to chain `exc` as its cause.

    None when `exc` is not the layer's to translate. The cause is left out when its text
    would show a secret.
    """
    document_type = context.get("document_type")
    if isinstance(exc, pydantic.ValidationError):
        error = DocumentValidationError.from_pydantic(exc, **context)
        secrets = secret_fields(document_type)
        if secrets and any(str(e["loc"][0]) in secrets for e in exc.errors() if e["loc"]):
            # pydantic's own text shows the input value: not kept when it is a secret.
            error.validation_error = None
            return error, False
        return error, True
    if isinstance(exc, _UNENCODABLE):
        # Before the PyMongoError branch: DocumentTooLarge is both. Nothing was sent.
        if isinstance(exc, pymongo_errors.DocumentTooLarge):
            what = "document over the 16 MB BSON limit"
        else:
            what = "document not encodable as BSON"
        return DocumentValidationError(f"{what}: {exc}", driver_error=exc, **context), True
    if isinstance(exc, OverflowError):
        if not _raised_by_encoder(exc):
            return None
        return DocumentValidationError(
            f"document not encodable as BSON: an integer beyond 64 bits ({exc})",
            driver_error=exc,
            **context,
        ), True
    if isinstance(exc, bson_errors.BSONError):
        return RepositoryError(f"BSON error: {exc}", driver_error=exc, **context), True
    if isinstance(exc, pymongo_errors.DuplicateKeyError):
        key = _duplicate_key(exc)
        secrets = secret_fields(document_type)
        if secrets and (not key or secrets & set(key)):
            # The driver's text carries the key's values: neither shown nor chained.
            shown = _redacted(key, secrets)
            return DuplicateError(
                f"duplicate key {shown or '(a unique key of secret fields)'}", key=shown, **context
            ), False
        return DuplicateError(
            f"duplicate key {key or exc.details}", key=key, driver_error=exc, **context
        ), True
    if isinstance(exc, pymongo_errors.BulkWriteError):
        return _translate_bulk(exc, context)
    if isinstance(exc, pymongo_errors.WriteConcernError):
        # Before OperationFailure (its base): the write ran; its durability is unconfirmed.
        return WriteOutcomeUnknown(
            f"write applied but not acknowledged by the write concern: {exc}",
            driver_error=exc,
            **context,
        ), True
    if (
        isinstance(exc, pymongo_errors.OperationFailure)
        and exc.code == _DOCUMENT_VALIDATION_FAILURE
    ):
        # The layer sets server-side validators only as move fences (`caas_data.tenancy.moves`).
        return TenantMoving(_FENCED, driver_error=exc, **context), True
    if isinstance(exc, pymongo_errors.PyMongoError):
        if exc.has_error_label("UnknownTransactionCommitResult"):
            return WriteOutcomeUnknown(
                f"transaction commit result unknown: {exc}", driver_error=exc, **context
            ), True
        if isinstance(exc, (pymongo_errors.ConnectionFailure, pymongo_errors.ExecutionTimeout)):
            return RetryableError(f"database unavailable: {exc}", driver_error=exc, **context), True
        code = exc.code if isinstance(exc, pymongo_errors.OperationFailure) else None
        if code in _SHUTDOWN_CODES:
            return RetryableError(
                f"database shutting down: {exc}", driver_error=exc, **context
            ), True
        if exc.timeout or any(exc.has_error_label(label) for label in _RETRYABLE_LABELS):
            return RetryableError(f"database timeout: {exc}", driver_error=exc, **context), True
        return RepositoryError(f"database error: {exc}", driver_error=exc, **context), True
    return None


def _translate_bulk(
    exc: pymongo_errors.BulkWriteError, context: dict[str, Any]
) -> tuple[CaasDataError, bool]:
    write_errors = exc.details.get("writeErrors", [])
    if write_errors and write_errors[0].get("code") == _DOCUMENT_VALIDATION_FAILURE:
        return TenantMoving(_FENCED, driver_error=exc, **context), True
    if not write_errors and exc.details.get("writeConcernErrors"):
        return WriteOutcomeUnknown(
            "bulk write applied but not acknowledged by the write concern",
            driver_error=exc,
            **context,
        ), True
    if write_errors and all(e.get("code") in (11000, 11001) for e in write_errors):
        secrets = secret_fields(context.get("document_type"))
        if secrets:
            first = _redacted(dict(write_errors[0].get("keyValue") or {}), secrets)
            return BulkDuplicateError(
                f"bulk write failed: {len(write_errors)} document(s) not written "
                f"(first key {first})",
                key=first,
                **context,
            ), False
        first = write_errors[0].get("keyValue") or {}
        return BulkDuplicateError(
            f"duplicate key {first} ({len(write_errors)} document(s) not written)",
            key=dict(first),
            driver_error=exc,
            **context,
        ), True
    return RepositoryError(f"bulk write failed: {exc}", driver_error=exc, **context), True


_DOCUMENT_VALIDATION_FAILURE = 121
_FENCED = "the tenant is moving (its old placement is fenced): nothing was written, retry"
