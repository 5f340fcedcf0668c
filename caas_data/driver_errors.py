"""The one place driver errors are translated into the error tree of errors.py.

PyMongo, BSON and pydantic errors raised under `translate_driver_errors()` come out as the
layer's own errors, the original kept as `__cause__` (unless its text would show a secret).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import pydantic
from bson import errors as bson_errors
from pymongo import errors as pymongo_errors

from caas_data.errors import (
    BulkDuplicateError,
    CaasDataError,
    DocumentValidationError,
    DuplicateError,
    RepositoryError,
    RetryableError,
    TenantMoving,
    WriteOutcomeUnknown,
)

__all__ = ["DriverErrorTranslation", "secret_fields", "translate_driver_errors"]

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
    if isinstance(exc, pydantic.ValidationError):
        return _invalid(exc, context)
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
    if isinstance(exc, pymongo_errors.PyMongoError):
        return _database_error(exc, context)
    return None


def _invalid(exc: pydantic.ValidationError, context: dict[str, Any]) -> tuple[CaasDataError, bool]:
    """A validation failure; pydantic's own text (it shows the input) is dropped for secrets."""
    error = DocumentValidationError.from_pydantic(exc, **context)
    secrets = secret_fields(context.get("document_type"))
    if secrets and any(str(e["loc"][0]) in secrets for e in exc.errors() if e["loc"]):
        error.validation_error = None
        return error, False
    return error, True


def _database_error(
    exc: pymongo_errors.PyMongoError, context: dict[str, Any]
) -> tuple[CaasDataError, bool]:
    """What a driver error means: a duplicate, a fenced tenant, a retryable or a plain failure."""
    if isinstance(exc, pymongo_errors.DuplicateKeyError):
        key = _duplicate_key(exc)
        secrets = secret_fields(context.get("document_type"))
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
    code = exc.code if isinstance(exc, pymongo_errors.OperationFailure) else None
    if code == _DOCUMENT_VALIDATION_FAILURE:
        # The layer sets server-side validators only as move fences (`caas_data.services.moves`).
        return TenantMoving(_FENCED, driver_error=exc, **context), True
    if exc.has_error_label("UnknownTransactionCommitResult"):
        return WriteOutcomeUnknown(
            f"transaction commit result unknown: {exc}", driver_error=exc, **context
        ), True
    if isinstance(exc, (pymongo_errors.ConnectionFailure, pymongo_errors.ExecutionTimeout)):
        return RetryableError(f"database unavailable: {exc}", driver_error=exc, **context), True
    if code in _SHUTDOWN_CODES:
        return RetryableError(f"database shutting down: {exc}", driver_error=exc, **context), True
    if exc.timeout or any(exc.has_error_label(label) for label in _RETRYABLE_LABELS):
        return RetryableError(f"database timeout: {exc}", driver_error=exc, **context), True
    return RepositoryError(f"database error: {exc}", driver_error=exc, **context), True


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
