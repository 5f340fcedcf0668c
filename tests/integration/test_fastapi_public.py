"""What a FastAPI service shows (issue 12.9): public models without storage names, and an
OpenAPI schema that lists the integration's error answers and required headers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from bson import ObjectId
from fastapi import APIRouter, Depends, FastAPI, Query, Response

from caas_data import ConfigurationError, DataLayer, Tier, tenant_scope
from caas_data.fastapi import (
    ErrorBody,
    attach_layer,
    document_header,
    if_match_version,
    install_error_handlers,
    public_dump,
    public_model,
    repository,
    require_version,
    set_etag,
    tenant_from_api_key,
    tenant_from_trusted_header,
)
from caas_data.platform import ApiKey, ApiKeyRepository
from caas_data.saas import User, UserRepository
from caas_data.testing import new_tenant_id

from .conftest import raw_collection
from .test_chat_api import chat_api

STORAGE_NAMES = {"_id", "__v", "schema_version", "deleted_by", "revision_id"}
UserOut = public_model(User)
Users = Depends(repository(UserRepository))


def build_app(layer: DataLayer) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    attach_layer(app, layer)
    router = APIRouter(dependencies=[Depends(tenant_from_trusted_header())])

    @router.post("/users", status_code=201, response_model=UserOut)
    async def create_user(body: dict[str, Any], response: Response, users: UserRepository = Users):
        user = await users.create(body)
        set_etag(response, user)
        return user  # the document itself: response_model shows its public face

    @router.get("/users")
    async def list_users(
        limit: int = Query(default=10, ge=1, le=50), users: UserRepository = Users
    ) -> list[dict[str, Any]]:
        return [public_dump(u) for u in (await users.find(limit=limit)).items]

    @router.get("/users/{user_id}", response_model=UserOut)
    async def get_user(user_id: str, response: Response, users: UserRepository = Users):
        user = await users.get(user_id, include_deleted=True)
        set_etag(response, user)
        return user

    @router.patch("/users/{user_id}")
    async def rename(
        user_id: str,
        body: dict[str, str],
        response: Response,
        expected: int = Depends(if_match_version),
        users: UserRepository = Users,
    ) -> Any:
        user = await users.get(user_id)
        require_version(user, expected)
        updated = await users.update(user, display_name=body["display_name"])
        set_etag(response, updated)
        return UserOut.of(updated)

    app.include_router(router)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    keyed = APIRouter(dependencies=[Depends(tenant_from_api_key())])

    @keyed.get("/me")
    async def me() -> dict[str, str]:
        return {}

    app.include_router(keyed)
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def tenant(caas_layer: DataLayer) -> str:
    tenant = new_tenant_id("pub")
    await caas_layer.tenants.provision(tenant, tier=Tier.PRO)
    return tenant


# -- public models -----------------------------------------------------------------------------


async def test_handlers_show_no_storage_names(caas_layer: DataLayer, tenant: str) -> None:
    headers = {"X-Tenant-ID": tenant}
    async with client(build_app(caas_layer)) as http:
        created = await http.post(
            "/users", json={"external_id": "ada", "display_name": "Ada"}, headers=headers
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert not STORAGE_NAMES & set(body)
        assert body["version"] == 0 and created.headers["ETag"] == '"0"'
        assert body["tenant_id"] == tenant and body["display_name"] == "Ada"
        url = f"/users/{body['id']}"

        # `version` is what If-Match carries.
        renamed = await http.patch(
            url,
            json={"display_name": "Ada L."},
            headers=headers | {"If-Match": f'"{body["version"]}"'},
        )
        assert renamed.status_code == 200 and renamed.json()["version"] == 1
        assert not STORAGE_NAMES & set(renamed.json())

        # A soft-deleted document has a `deleted_by` in storage: still not shown.
        stored = raw_collection(caas_layer, tenant, Tier.PRO, "users")
        deletion = {"deleted_at": datetime.now(UTC), "deleted_by": "admin-7"}
        await stored.update_one({"_id": ObjectId(body["id"])}, {"$set": deletion})
        deleted = await http.get(url, headers=headers)
        assert deleted.status_code == 200 and deleted.json()["deleted_at"] is not None
        assert not STORAGE_NAMES & set(deleted.json()) and "admin-7" not in deleted.text

        listed = await http.get("/users", headers=headers)
        assert listed.status_code == 200
        for row in listed.json():
            assert not STORAGE_NAMES & set(row)


async def test_public_models_leave_out_secrets(caas_layer: DataLayer, tenant: str) -> None:
    async with tenant_scope(tenant, layer=caas_layer):
        issued = await caas_layer.repo(ApiKeyRepository).issue("svc", scopes=["chat"])
    shown = public_dump(issued.key)
    assert "key_hash" not in shown and not STORAGE_NAMES & set(shown)
    assert shown["id"] == str(issued.key.id) and shown["prefix"] == issued.key.prefix
    assert public_model(ApiKey) is public_model(ApiKey)  # one class per document type
    with pytest.raises(TypeError, match="UserPublic shows User documents, not ApiKey"):
        UserOut.of(issued.key)  # type: ignore[arg-type]


# -- one error body ------------------------------------------------------------------------------


async def test_fastapis_422_and_the_layers_share_one_body(
    caas_layer: DataLayer, tenant: str
) -> None:
    headers = {"X-Tenant-ID": tenant}
    async with client(build_app(caas_layer)) as http:
        fastapis = await http.get("/users", params={"limit": 0}, headers=headers)
        layers = await http.post(
            "/users", json={"external_id": "", "display_name": "x"}, headers=headers
        )
        missing = await http.get("/users/0123456789abcdef01234567", headers=headers)
    assert fastapis.status_code == 422 and layers.status_code == 422
    for response in (fastapis, layers, missing):
        assert ErrorBody.model_validate(response.json()).detail
    assert fastapis.json()["fields"] == ["limit"] and layers.json()["fields"] == ["external_id"]
    assert missing.status_code == 404
    assert missing.json() == {"detail": "User 0123456789abcdef01234567 not found"}


async def test_a_404_names_a_long_key_without_echoing_it_whole(
    caas_layer: DataLayer, tenant: str
) -> None:
    app = build_app(caas_layer)
    router = APIRouter(dependencies=[Depends(tenant_from_trusted_header())])

    @router.get("/by-external-id/{external_id}")
    async def by_external_id(external_id: str, users: UserRepository = Users) -> Any:
        return public_dump(await users.get_by_external_id(external_id))

    app.include_router(router)
    async with client(app) as http:
        short = await http.get("/by-external-id/nobody", headers={"X-Tenant-ID": tenant})
        long = await http.get("/by-external-id/" + "x" * 5000, headers={"X-Tenant-ID": tenant})
    assert short.status_code == 404 and "'nobody'" in short.json()["detail"]
    assert long.status_code == 404 and 100 < len(long.json()["detail"]) <= 300


# -- the OpenAPI schema -------------------------------------------------------------------------


def _operation(schema: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = schema["paths"][path][method]
    return operation


def _header(operation: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [p for p in operation["parameters"] if p["name"].lower() == name.lower()]
    return found


def _error_statuses(operation: dict[str, Any]) -> set[int]:
    ref = "#/components/schemas/ErrorBody"
    return {
        int(status)
        for status, answer in operation["responses"].items()
        if answer.get("content", {}).get("application/json", {}).get("schema") == {"$ref": ref}
    }


async def test_openapi_lists_the_answers_and_required_headers(caas_layer: DataLayer) -> None:
    async with client(build_app(caas_layer)) as http:
        schema = (await http.get("/openapi.json")).json()

    get_user = _operation(schema, "/users/{user_id}", "get")
    assert _error_statuses(get_user) >= {401, 403, 404, 409, 422}
    assert {412, 428}.isdisjoint(_error_statuses(get_user))
    tenant_header = _header(get_user, "X-Tenant-ID")
    assert tenant_header["required"] is True and tenant_header["in"] == "header"
    shown = get_user["responses"]["200"]["content"]["application/json"]["schema"]
    assert shown == {"$ref": "#/components/schemas/UserPublic"}
    public = set(schema["components"]["schemas"]["UserPublic"]["properties"])
    assert {"id", "version", "display_name"} <= public and not STORAGE_NAMES & public

    rename = _operation(schema, "/users/{user_id}", "patch")
    assert _error_statuses(rename) >= {401, 403, 404, 409, 412, 422, 428}
    assert _header(rename, "If-Match")["required"] is True

    # FastAPI's own 422 is documented in the integration's body, not HTTPValidationError.
    list_users = _operation(schema, "/users", "get")
    assert 422 in _error_statuses(list_users)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    error_body = schema["components"]["schemas"]["ErrorBody"]
    assert error_body["required"] == ["detail"] and "fields" in error_body["properties"]

    # An API key may come in either header: both listed, neither required; 401/403 documented.
    me = _operation(schema, "/me", "get")
    assert _error_statuses(me) >= {401, 403}
    assert _header(me, "X-API-Key")["required"] is False

    # A route outside the layer gives none of these.
    assert _error_statuses(_operation(schema, "/health", "get")) == set()


async def test_the_chat_apis_schema_documents_its_answers(caas_layer: DataLayer) -> None:
    app: FastAPI = chat_api.create_app(caas_layer)
    schema = app.openapi()
    send = _operation(schema, "/conversations/{conversation_id}/messages", "post")
    assert _error_statuses(send) >= {401, 403, 404, 409, 422}
    assert _header(send, "X-Tenant-ID")["required"] is True
    assert _header(send, "X-User-ID")["required"] is True  # the example's own header
    assert "X-User-ID" not in str(_operation(schema, "/users", "post"))


def test_only_described_statuses_can_be_documented() -> None:
    with pytest.raises(ConfigurationError, match=r"no description for statuses \[418\]"):
        document_header("X-Teapot", answers=(401, 418))
