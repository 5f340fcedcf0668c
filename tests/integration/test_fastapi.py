"""FastAPI integration: scope per request, HTTP errors, ETag/If-Match locking."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response

from caas_data import DataLayer, TenantKeyErased, Tier, current_tenant_id
from caas_data.fastapi import (
    Principal,
    attach_layer,
    caas_lifespan,
    get_layer,
    if_match_version,
    install_error_handlers,
    repository,
    require_version,
    set_etag,
    tenant_from_api_key,
    tenant_from_trusted_header,
)
from caas_data.saas import UserRepository
from caas_data.testing import ServerHandle, new_tenant_id

Users = Depends(repository(UserRepository))


def build_app(tenant_dependency: Any) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    router = APIRouter(dependencies=[Depends(tenant_dependency)])

    @router.post("/users", status_code=201)
    async def create_user(body: dict[str, Any], response: Response, users: UserRepository = Users):
        user = await users.create(body)
        set_etag(response, user)
        return {"id": str(user.id), "tenant": user.tenant_id}

    @router.get("/users")
    async def list_users(users: UserRepository = Users) -> list[dict[str, str]]:
        page = await users.find(limit=1000)
        return [{"id": str(u.id), "tenant": u.tenant_id, "scope": current_tenant_id() or ""}
                for u in page]  # fmt: skip

    @router.get("/users/{user_id}")
    async def get_user(user_id: str, response: Response, users: UserRepository = Users):
        user = await users.get(user_id)
        set_etag(response, user)
        return {"display_name": user.display_name}

    @router.patch("/users/{user_id}")
    async def rename(
        user_id: str,
        body: dict[str, str],
        request: Request,
        response: Response,
        expected: int = Depends(if_match_version),
        users: UserRepository = Users,
    ):
        user = await users.get(user_id)
        require_version(user, expected)
        hook = getattr(request.app.state, "before_update", None)
        if hook is not None:
            await hook()
        updated = await users.update(user, display_name=body["display_name"])
        set_etag(response, updated)
        return {"display_name": updated.display_name}

    @router.get("/erased")
    async def erased() -> None:
        raise TenantKeyErased("encrypted data of tenant 'x' is unreadable", tenant_id="x")

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    app.include_router(router)
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://test",
    )


@pytest.fixture
async def app(caas_layer: DataLayer) -> FastAPI:
    app = build_app(tenant_from_trusted_header())
    attach_layer(app, caas_layer)
    return app


async def test_requests_run_in_their_tenant_scope(app: FastAPI, caas_layer: DataLayer) -> None:
    tenants = [new_tenant_id("w") for _ in range(4)]
    for i, tenant in enumerate(tenants):
        await caas_layer.tenants.provision(tenant, tier=[Tier.FREE, Tier.STARTER, Tier.PRO,
                                                         Tier.ENTERPRISE][i])  # fmt: skip
    async with client(app) as http:
        for tenant in tenants:
            for n in range(3):
                r = await http.post("/users", json={"external_id": f"u{n}", "display_name": "x"},
                                    headers={"X-Tenant-ID": tenant})  # fmt: skip
                assert r.status_code == 201 and r.json()["tenant"] == tenant
        order = [tenants[i % 4] for i in range(200)]
        random.Random(5).shuffle(order)
        responses = await asyncio.gather(
            *(http.get("/users", headers={"X-Tenant-ID": t}) for t in order)
        )
    for tenant, response in zip(order, responses, strict=True):
        assert response.status_code == 200
        rows = response.json()
        assert len(rows) == 3
        assert {r["tenant"] for r in rows} == {tenant}
        assert {r["scope"] for r in rows} == {tenant}  # the handler ran inside the scope
    assert current_tenant_id() is None


async def test_missing_and_unknown_tenants(app: FastAPI) -> None:
    async with client(app) as http:
        assert (await http.get("/users")).status_code == 401
        assert (await http.get("/users", headers={"X-Tenant-ID": "nobody-here"})).status_code == 403
        assert (await http.get("/users", headers={"X-Tenant-ID": "Bad_Id"})).status_code == 403


async def test_errors_map_to_statuses_without_leaking(app: FastAPI, caas_layer: DataLayer) -> None:
    tenant = await _tenant(caas_layer)
    headers = {"X-Tenant-ID": tenant}
    async with client(app) as http:
        assert (
            await http.get("/users/0123456789abcdef01234567", headers=headers)
        ).status_code == 404
        bad = await http.post("/users", json={"external_id": "", "display_name": "x"},
                              headers=headers)  # fmt: skip
        assert bad.status_code == 422 and bad.json()["fields"] == ["external_id"]
        ok = await http.post(
            "/users", json={"external_id": "a", "display_name": "x"}, headers=headers
        )
        dup = await http.post(
            "/users", json={"external_id": "a", "display_name": "x"}, headers=headers
        )
        assert ok.status_code == 201 and dup.status_code == 409
        assert (await http.get("/erased", headers=headers)).status_code == 410
        boom = await http.get("/boom", headers=headers)
        assert boom.status_code == 500 and "hunter2" not in boom.text and "secret" not in boom.text


async def test_etag_if_match_flow(app: FastAPI, caas_layer: DataLayer) -> None:
    tenant = await _tenant(caas_layer)
    headers = {"X-Tenant-ID": tenant}
    async with client(app) as http:
        created = await http.post("/users", json={"external_id": "e", "display_name": "v0"},
                                  headers=headers)  # fmt: skip
        user_id, etag = created.json()["id"], created.headers["ETag"]
        assert etag == '"0"'
        url = f"/users/{user_id}"
        missing = await http.patch(url, json={"display_name": "x"}, headers=headers)
        assert missing.status_code == 428
        ok = await http.patch(
            url, json={"display_name": "v1"}, headers=headers | {"If-Match": etag}
        )
        assert ok.status_code == 200 and ok.headers["ETag"] == '"1"'
        stale = await http.patch(url, json={"display_name": "lost"},
                                 headers=headers | {"If-Match": etag})  # fmt: skip
        assert stale.status_code == 412 and stale.headers["ETag"] == '"1"'
        garbage = await http.patch(url, json={"display_name": "x"},
                                   headers=headers | {"If-Match": '"abc"'})  # fmt: skip
        assert garbage.status_code == 412
        assert (await http.get(url, headers=headers)).json()["display_name"] == "v1"


async def test_version_conflict_inside_a_handler_is_409(
    app: FastAPI, caas_layer: DataLayer
) -> None:
    tenant = await _tenant(caas_layer)
    headers = {"X-Tenant-ID": tenant}
    barrier = asyncio.Barrier(2)
    async with client(app) as http:
        created = await http.post("/users", json={"external_id": "c", "display_name": "v0"},
                                  headers=headers)  # fmt: skip
        url = f"/users/{created.json()['id']}"
        app.state.before_update = barrier.wait  # both requests read v0 before either writes
        first, second = await asyncio.gather(
            http.patch(url, json={"display_name": "a"}, headers=headers | {"If-Match": '"0"'}),
            http.patch(url, json={"display_name": "b"}, headers=headers | {"If-Match": '"0"'}),
        )
        app.state.before_update = None
        statuses = sorted([first.status_code, second.status_code])
        assert statuses == [200, 409]
        loser = first if first.status_code == 409 else second
        assert loser.json()["current_version"] == 1 and loser.headers["ETag"] == '"1"'
        winner = first if first.status_code == 200 else second
        assert (await http.get(url, headers=headers)).json() == winner.json()


async def test_api_key_dependency_and_lifespan(caas_server: ServerHandle) -> None:
    keys = {"key-for-acme-0123456789": Principal("acme-corp", frozenset({"users:read"}))}

    async def authenticate(layer: DataLayer, raw: str) -> Principal:
        from caas_data import NotFoundError

        if raw not in keys:
            raise NotFoundError("unknown API key")
        return keys[raw]

    app = build_app(tenant_from_api_key(authenticate, required_scopes=frozenset({"users:read"})))
    from caas_data.testing import new_prefix

    lifespan = caas_lifespan(uri=caas_server.uri, database_prefix=new_prefix())
    async with lifespan(app):
        layer = get_layer_from(app)
        await layer.tenants.provision("acme-corp", tier=Tier.PRO)
        async with client(app) as http:
            assert (await http.get("/users")).status_code == 401
            assert (await http.get("/users", headers={"X-API-Key": "wrong"})).status_code == 401
            ok = await http.get(
                "/users", headers={"Authorization": "Bearer key-for-acme-0123456789"}
            )
            assert ok.status_code == 200 and ok.json() == []
        from caas_data.testing import drop_prefix_databases

        await drop_prefix_databases(layer)
    assert layer.client is not None
    with pytest.raises(Exception, match="closed"):
        layer.repo(UserRepository)


def get_layer_from(app: FastAPI) -> DataLayer:
    class _Request:
        def __init__(self, app: FastAPI) -> None:
            self.app = app

    return get_layer(_Request(app))  # type: ignore[arg-type]


async def _tenant(layer: DataLayer) -> str:
    tenant = new_tenant_id("api")
    await layer.tenants.provision(tenant, tier=Tier.FREE)
    return tenant


async def test_api_keys_from_the_repository_scope_requests(caas_layer: DataLayer) -> None:
    from caas_data import tenant_scope
    from caas_data.platform import ApiKeyRepository

    app = build_app(tenant_from_api_key(required_scopes=frozenset({"users:read"})))
    attach_layer(app, caas_layer)
    tenant = await _tenant(caas_layer)
    async with tenant_scope(tenant):
        keys = caas_layer.repo(ApiKeyRepository)
        good = await keys.issue("svc", scopes=["users:read"])
        weak = await keys.issue("weak", scopes=["messages:read"])
        revoked = await keys.issue("old", scopes=["users:read"])
        await keys.revoke(revoked.key.id)
        await caas_layer.repo(UserRepository).create({"external_id": "k", "display_name": "k"})
    async with client(app) as http:
        ok = await http.get("/users", headers={"X-API-Key": good.secret})
        assert ok.status_code == 200 and [r["tenant"] for r in ok.json()] == [tenant]
        assert (await http.get("/users", headers={"X-API-Key": weak.secret})).status_code == 403
        assert (await http.get("/users", headers={"X-API-Key": revoked.secret})).status_code == 401
        assert (await http.get("/users", headers={"X-API-Key": "caas_nope"})).status_code == 401
