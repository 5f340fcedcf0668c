"""FastAPI integration (extra `caas-data[fastapi]`).

A lifespan, a tenant scope per request, HTTP errors, optimistic locking over ETag/If-Match.

```python
app = FastAPI(lifespan=caas_lifespan())
install_error_handlers(app)
router = APIRouter(dependencies=[Depends(tenant_from_trusted_header())])
UserOut = public_model(User)          # id, version, fields; no storage or internal names

@router.get("/users/{user_id}", response_model=UserOut)
async def get_user(user_id: str, response: Response,
                   users: UserRepository = Depends(repository(UserRepository))):
    user = await users.get(user_id)
    set_etag(response, user)
    return user
```

Every handler behind a tenant dependency runs inside `tenant_scope(...)`; a request with no
tenant gets 401, an unknown one 403, and none runs outside a scope.

No input answers 500: the layer's errors, FastAPI's request validation and `HTTPException`s
all answer with one body, `ErrorBody`: `{"detail": "<what went wrong>", ...}` (422s add
`"fields"`). `install_error_handlers` also documents those answers in the OpenAPI schema: a
route behind a tenant dependency lists 401/403 and the layer's 404/409/422/503, a route with
`if_match_version` 412/428, each with the `ErrorBody` model, and the tenant header and
`If-Match` are marked required. Handlers return documents through `public_model(Doc)` (as
`response_model`) or `public_dump(doc)`: `id` and `version`, never `_id`, `__v`,
`schema_version`, `deleted_by` or a secret field.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from caas_data.documents.base import BaseDocument
from caas_data.documents.public import PublicModel, public_dump, public_model
from caas_data.errors import (
    CaasDataError,
    ConfigurationError,
    DocumentValidationError,
    DuplicateError,
    InvalidTenantId,
    NotFoundError,
    RetryableError,
    TenancyError,
    TenantContextMissing,
    TenantKeyErased,
    TenantMismatch,
    TenantNotFound,
    VersionConflict,
    optional_dependency,
)
from caas_data.layer import DataLayer, connect
from caas_data.repositories.base import INT64_MAX, Repository
from caas_data.repositories.platform.api_keys import ApiKeyRepository
from caas_data.tenancy.context import tenant_scope
from caas_data.tenancy.ids import validate_tenant_id

# FastAPI comes with the `fastapi` extra: without it, importing this module says which to install.
with optional_dependency("fastapi", extra="fastapi", feature="caas_data.fastapi"):
    from fastapi import FastAPI, Header, HTTPException, Request, Response
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

__all__ = [
    "ErrorBody",
    "Principal",
    "PublicModel",
    "api_key_authenticator",
    "attach_layer",
    "caas_lifespan",
    "document_header",
    "get_layer",
    "if_match_version",
    "install_error_handlers",
    "public_dump",
    "public_model",
    "repository",
    "require_version",
    "set_etag",
    "tenant_from_api_key",
    "tenant_from_trusted_header",
]

logger = logging.getLogger("caas_data.fastapi")
R = TypeVar("R", bound=Repository[Any])
_STATE_KEY = "caas_layer"


class ErrorBody(BaseModel):
    """The body of every error answer: the layer's, FastAPI's own 422, `HTTPException`s."""

    detail: str = Field(description="What went wrong, in a sentence; never the input back.")
    fields: list[str] | None = Field(
        default=None, description="422: the invalid fields (`__root__`: the whole document)."
    )
    current_version: int | None = Field(
        default=None, description="409 version conflict: the version now stored."
    )
    soft_deleted: bool | None = Field(
        default=None, description="409 duplicate: whether the taken key is a deleted document's."
    )


# What each status means, as the OpenAPI schema describes it.
_ANSWERS: dict[int, str] = {
    401: "No tenant credentials: the tenant header or API key is missing or invalid.",
    403: "Unknown tenant, or a credential without the scopes this route needs.",
    404: "No such document for this tenant; the detail names it.",
    409: "Version conflict (current_version, and the current ETag) or a key already taken.",
    412: "If-Match names a version other than the one stored (the ETag has the current one).",
    422: "Invalid input; `fields` names what to fix.",
    428: "If-Match required: send the ETag you read.",
    503: "Database temporarily unavailable: retry after Retry-After.",
}

# The headers the integration's dependencies read, by lower-case name: the statuses a route
# that reads one can give, and whether the header is required. The OpenAPI schema is
# documented from the header parameters FastAPI lists on each route.
_HEADERS: dict[str, tuple[frozenset[int], bool]] = {}
# A route behind a tenant dependency uses the layer: these answers come with it.
_LAYER_ANSWERS = frozenset({404, 409, 422, 503})


def document_header(name: str, *, answers: Iterable[int], required: bool = True) -> None:
    """Document a header your own dependency reads, as the integration documents its own.

    Every route with a `name` header parameter lists `answers` (with `ErrorBody`) in the
    OpenAPI schema, and `required` marks the header required there (keep it optional in the
    signature, so that its absence reaches your code, not FastAPI's 422).
    """
    statuses = frozenset(answers)
    unknown = statuses - _ANSWERS.keys()
    if unknown:
        raise ConfigurationError(
            f"no description for statuses {sorted(unknown)}: use {sorted(_ANSWERS)}"
        )
    _HEADERS[name.lower()] = (statuses, required)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: the tenant, and the scopes its credential grants."""

    tenant_id: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    key_id: str | None = None


# -- the layer's lifetime ----------------------------------------------------------------


def caas_lifespan(
    *,
    uri: str | None = None,
    database_prefix: str | None = None,
    documents: Iterable[type[BaseDocument]] = (),
    then: Callable[[FastAPI], Any] | None = None,
    **connect_options: Any,
) -> Callable[[FastAPI], Any]:
    """A FastAPI `lifespan` that connects the layer at start-up and closes it at shutdown.

    Args:
        uri: defaults to `CAAS_MONGODB_URI`.
        database_prefix: defaults to `CAAS_DATABASE_PREFIX`, then `caas`.
        documents: the service's own document classes, registered beside the built-in ones.
        then: another lifespan to run inside this one (the app's own start-up work).
        connect_options: more `connect()` arguments (`observers=`, client options...).
    """
    own = list(documents)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        layer = await connect(
            uri, database_prefix=database_prefix, documents=own, **connect_options
        )
        attach_layer(app, layer)
        try:
            if then is None:
                yield
            else:
                async with then(app):
                    yield
        finally:
            await layer.close()

    return lifespan


def attach_layer(app: FastAPI, layer: DataLayer) -> None:
    """Give the app an already connected layer (tests, or apps that manage it themselves)."""
    setattr(app.state, _STATE_KEY, layer)


def get_layer(request: Request) -> DataLayer:
    """Dependency: the app's layer."""
    layer = getattr(request.app.state, _STATE_KEY, None)
    if not isinstance(layer, DataLayer):
        raise ConfigurationError("no caas_data layer: use caas_lifespan() or attach_layer()")
    return layer


def repository(repository_type: type[R]) -> Callable[[Request], R]:
    """Dependency factory: `users: UserRepository = Depends(repository(UserRepository))`."""

    def provide(request: Request) -> R:
        return get_layer(request).repo(repository_type)

    return provide


# -- tenant resolution: the handler runs inside the tenant's scope ----------------------


@asynccontextmanager
async def _scoped(layer: DataLayer, principal: Principal) -> AsyncIterator[Principal]:
    # A context manager, not a generator iterated with `async for`: an error raised by the
    # handler must close the scope in the request's own task (a suspended generator would be
    # closed later by the garbage collector, in another context, failing to reset the scope).
    try:
        validate_tenant_id(principal.tenant_id)
    except InvalidTenantId as exc:
        raise TenantNotFound("unknown tenant") from exc
    async with tenant_scope(principal.tenant_id, layer=layer) as scope:
        if scope.placement is None:
            raise TenantNotFound("unknown tenant", tenant_id=principal.tenant_id)
        yield principal


def tenant_from_trusted_header(
    header: str = "X-Tenant-ID",
) -> Callable[..., AsyncIterator[Principal]]:
    """Dependency: the tenant named by a header that a trusted gateway sets.

    Only for services behind a gateway that authenticates callers and strips this header
    from outside requests.
    """
    # Optional in the signature so that a request without it answers 401, not FastAPI's 422;
    # the schema marks it required.
    document_header(header, answers=(401, 403, *_LAYER_ANSWERS))

    async def dependency(
        request: Request, tenant: str | None = Header(default=None, alias=header)
    ) -> AsyncIterator[Principal]:
        if not tenant:
            raise TenantContextMissing(f"missing {header} header")
        async with _scoped(get_layer(request), Principal(tenant)) as principal:
            yield principal

    return dependency


Authenticator = Callable[[DataLayer, str], Awaitable[Principal]]


async def api_key_authenticator(layer: DataLayer, raw_key: str) -> Principal:
    """The default `authenticate`: the key's tenant and scopes, from the api_keys repository.

    Unknown, revoked and expired keys raise `NotFoundError` (answered as 401).
    """
    principal = await layer.repo(ApiKeyRepository).authenticate(raw_key)
    return Principal(principal.tenant_id, frozenset(principal.scopes), str(principal.key_id))


def tenant_from_api_key(
    authenticate: Authenticator = api_key_authenticator,
    *,
    header: str = "X-API-Key",
    required_scopes: frozenset[str] = frozenset(),
) -> Callable[..., AsyncIterator[Principal]]:
    """Dependency: the tenant of the API key in `header` (or `Authorization: Bearer ...`).

    `authenticate(layer, raw_key)` checks the key and returns its principal, raising a
    `CaasDataError` for a bad key; the default checks the api_keys repository.
    """
    # Either header will do: neither is marked required.
    document_header(header, answers=(401, 403, *_LAYER_ANSWERS), required=False)
    document_header("Authorization", answers=(401, 403, *_LAYER_ANSWERS), required=False)

    async def dependency(
        request: Request,
        api_key: str | None = Header(default=None, alias=header),
        authorization: str | None = Header(default=None),
    ) -> AsyncIterator[Principal]:
        raw = api_key
        if raw is None and authorization and authorization.lower().startswith("bearer "):
            raw = authorization[7:].strip()
        if not raw:
            raise TenantContextMissing(f"missing {header} header")
        layer = get_layer(request)
        try:
            principal = await authenticate(layer, raw)
        except (NotFoundError, TenancyError) as exc:
            # Unknown, revoked or expired keys all read the same from outside.
            raise HTTPException(401, "invalid API key") from exc
        missing = required_scopes - principal.scopes
        if missing:
            raise HTTPException(403, f"API key lacks scopes: {', '.join(sorted(missing))}")
        async with _scoped(layer, principal) as scoped:
            yield scoped

    return dependency


# -- optimistic locking over HTTP --------------------------------------------------------


def set_etag(response: Response, document: Any) -> None:
    """Send the document's version as its ETag."""
    response.headers["ETag"] = f'"{document.version}"'


# The ETags `set_etag` sends, `"<version>"`, also weakened by a proxy (`W/"3"`) or unquoted
# by a careless client: ASCII digits only (`str.isdigit` accepts "²", which `int` refuses),
# at most 19 of them (an int64), so nothing here can raise.
_VERSION_ETAG = re.compile(r'(?:W/)?"([0-9]{1,19})"|([0-9]{1,19})')


def if_match_version(if_match: str | None = Header(default=None, alias="If-Match")) -> int:
    """Dependency for writes: the version the client read, from `If-Match`.

    428 without the header, or with `If-Match: *` (it asks only that the resource exist: a
    write without a version could lose someone's update). 412 when the header names no
    version this API issued (RFC 9110: no listed tag matches the current one), including
    malformed values and numbers beyond an int64.
    """
    if if_match is None or if_match.strip() == "*":
        raise HTTPException(428, "If-Match header required: send the ETag you read")
    match = _VERSION_ETAG.fullmatch(if_match.strip())
    version = int(match.group(1) or match.group(2)) if match is not None else -1
    if not 0 <= version <= INT64_MAX:
        raise HTTPException(412, "If-Match does not name a version of this resource")
    return version


document_header("If-Match", answers=(412, 428))


def require_version(document: Any, expected: int) -> None:
    """412 when the stored document moved past the version the client read."""
    if document.version != expected:
        raise HTTPException(
            412,
            f"precondition failed: resource is at version {document.version}",
            headers={"ETag": f'"{document.version}"'},
        )


# -- errors -> HTTP ----------------------------------------------------------------------


def _problem(
    status: int, title: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = ErrorBody(detail=title, **extra).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


def _to_response(exc: CaasDataError) -> JSONResponse:
    if isinstance(exc, NotFoundError):
        # The message names what is missing (ids the caller sent, in its own tenant), cut
        # short so that a long key the caller sent is not echoed whole.
        detail = exc.message
        return _problem(404, detail if len(detail) <= 300 else detail[:299] + "…")
    if isinstance(exc, VersionConflict):
        version = exc.current_version
        return _problem(
            409,
            "version conflict: the resource changed since you read it",
            current_version=version,
            headers={"ETag": f'"{version}"'} if version is not None else None,
        )
    if isinstance(exc, DuplicateError):
        return _problem(409, "already exists", soft_deleted=exc.soft_deleted)
    if isinstance(exc, DocumentValidationError):
        return _problem(422, exc.message, fields=list(exc.fields))
    if isinstance(exc, TenantContextMissing):
        return _problem(401, "tenant credentials required")
    if isinstance(exc, TenantNotFound | TenantMismatch | InvalidTenantId):
        return _problem(403, "forbidden for this tenant")
    if isinstance(exc, TenantKeyErased):  # crypto-shredded: gone for good, not a server fault
        return _problem(410, "gone: this data was erased")
    if isinstance(exc, RetryableError):
        return _problem(503, "temporarily unavailable", headers={"Retry-After": "1"})
    logger.error("caas_data error", exc_info=exc)
    return _problem(500, "internal error")


def _request_problem(exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 in the layer's body: a sentence and the fields, never the input back."""
    fields: list[str] = []
    details: list[str] = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        # ("query", "before"), ("body", "seq"), ("header", "if-match"): the name is the rest.
        name = ".".join(location[1:]) or ".".join(location) or "request"
        fields.append(name)
        details.append(f"{name}: {error.get('msg', 'invalid')}")
    return _problem(422, f"invalid request: {'; '.join(details)}", fields=fields)


def install_error_handlers(app: FastAPI) -> None:
    """Map the layer's errors and bad requests to HTTP statuses; anything else is a bare 500.

    Also documents them: the app's OpenAPI schema lists, on each route, the statuses that the
    integration's headers (tenant, API key, If-Match) imply, with the `ErrorBody` model
    (FastAPI's own 422 included), and marks the required ones.
    """
    _document_answers(app)

    async def on_caas_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CaasDataError)
        return _to_response(exc)

    async def on_bad_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _request_problem(exc)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error", exc_info=exc)
        return _problem(500, "internal error")

    app.add_exception_handler(CaasDataError, on_caas_error)
    app.add_exception_handler(RequestValidationError, on_bad_request)
    app.add_exception_handler(Exception, on_unexpected)


# -- errors in the OpenAPI schema --------------------------------------------------------

_SCHEMA_REF = "#/components/schemas/"
_FASTAPI_422 = _SCHEMA_REF + "HTTPValidationError"


def _error_answer(status: int) -> dict[str, Any]:
    schema = {"$ref": _SCHEMA_REF + ErrorBody.__name__}
    return {"description": _ANSWERS[status], "content": {"application/json": {"schema": schema}}}


def _document_operation(operation: dict[str, Any]) -> None:
    """Add the error answers the operation's header parameters imply; mark those required."""
    statuses: set[int] = set()
    for parameter in operation.get("parameters", []):
        declared = _HEADERS.get(str(parameter.get("name", "")).lower())
        if parameter.get("in") != "header" or declared is None:
            continue
        statuses |= declared[0]
        if declared[1]:
            parameter["required"] = True
            parameter["schema"] = {"type": "string", "title": parameter["name"]}
    responses = operation.setdefault("responses", {})
    fastapi_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
    if fastapi_422.get("schema", {}).get("$ref") == _FASTAPI_422:
        del responses["422"]  # FastAPI's shape; this integration answers with ErrorBody
        statuses.add(422)
    for status in sorted(statuses):
        responses.setdefault(str(status), _error_answer(status))  # a route's own entry wins


def _document_answers(app: FastAPI) -> None:
    """Wrap `app.openapi` so each schema it builds documents the integration's answers."""
    build = app.openapi
    documented: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        schema = build()  # FastAPI's, cached until the routes change
        if documented and documented[0] is schema:
            return schema
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                if isinstance(operation, dict):
                    _document_operation(operation)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components[ErrorBody.__name__] = ErrorBody.model_json_schema(
            ref_template=_SCHEMA_REF + "{model}"
        )
        if _FASTAPI_422 not in str(schema.get("paths")):
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
        documented[:] = [schema]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
