"""HTTP: no input answers 500. Bad input is a 400/412/422/428 with the layer's one error body,
`{"detail": "<sentence>", ...}` (422s also name the `fields`), whatever the request carries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from beanie import PydanticObjectId
from fastapi import APIRouter, Depends, FastAPI, Response

from caas_data import DataLayer
from caas_data.fastapi import (
    attach_layer,
    if_match_version,
    install_error_handlers,
    repository,
    require_version,
    set_etag,
    tenant_from_trusted_header,
)
from caas_data.repositories import INT64_MAX
from caas_data.saas import MessageRepository, UserRepository

from .test_chat_api import chat_api, send, set_up

HUGE = 10**30
NINES = '"' + "9" * 5000 + '"'


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response has `status` and the layer's error body (no stack, no echo of the input)."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert isinstance(body, dict) and isinstance(body["detail"], str), body
    assert len(response.text) < 2000  # a 5,000-digit input is not sent back
    return body


def plain_app(layer: DataLayer) -> FastAPI:
    """A service written with the integration's parts, forgetting to bound its own ints."""
    app = FastAPI()
    install_error_handlers(app)
    attach_layer(app, layer)
    router = APIRouter(dependencies=[Depends(tenant_from_trusted_header())])
    users = Depends(repository(UserRepository))
    messages_dep = Depends(repository(MessageRepository))

    @router.post("/users", status_code=201)
    async def create(body: dict[str, Any], response: Response, repo: UserRepository = users):
        user = await repo.create(body)
        set_etag(response, user)
        return {"id": str(user.id)}

    @router.patch("/users/{user_id}")
    async def rename(
        user_id: str,
        body: dict[str, str],
        response: Response,
        expected: int = Depends(if_match_version),
        repo: UserRepository = users,
    ):
        user = await repo.get(user_id)
        require_version(user, expected)
        updated = await repo.update(user, display_name=body["display_name"])
        set_etag(response, updated)
        return {"display_name": updated.display_name}

    @router.get("/history/{conversation_id}")
    async def history(
        conversation_id: str,
        newer_than: int | None = None,  # unbounded on purpose: the layer still answers 422
        messages: MessageRepository = messages_dep,
    ):
        page = await messages.history(PydanticObjectId(conversation_id), newer_than=newer_than)
        return {"count": len(page.items)}

    app.include_router(router)
    return app


async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
async def plain(caas_layer: DataLayer) -> AsyncIterator[httpx.AsyncClient]:
    async for http in client(plain_app(caas_layer)):
        yield http


@pytest.fixture
async def chat(caas_layer: DataLayer) -> AsyncIterator[httpx.AsyncClient]:
    async for http in client(chat_api.create_app(caas_layer)):
        yield http


# The documented answers of `if_match_version`. Header bytes are read as latin-1, so b'"\xb2"'
# reaches the app as '"²"'.
IF_MATCH: dict[str | bytes, int] = {
    '"²"'.encode("latin-1"): 412,  # a digit to str.isdigit, not to int
    '"²"'.encode(): 412,
    '"\u0661"'.encode(): 412,  # an Arabic-Indic one, in UTF-8
    NINES: 412,  # 5,000 digits: int() would refuse them
    f'"{INT64_MAX + 1}"': 412,  # beyond an int64: no version of ours
    '"abc"': 412,
    '"-1"': 412,
    '"1", "0"': 412,  # lists are not ETags this API issued
    "W/": 412,
    "": 412,
    "*": 428,  # asks only that the resource exist: no protection against a lost update
}


async def test_if_match_never_answers_500(plain: httpx.AsyncClient, shared_tenant: str) -> None:
    headers = {"X-Tenant-ID": shared_tenant}
    created = await plain.post(
        "/users", json={"external_id": "e", "display_name": "v0"}, headers=headers
    )
    assert created.status_code == 201 and created.headers["ETag"] == '"0"'
    url = f"/users/{created.json()['id']}"
    for if_match, status in IF_MATCH.items():
        response = await plain.patch(
            url, json={"display_name": "lost"}, headers=headers | {"If-Match": if_match}
        )
        problem(response, status)
    problem(await plain.patch(url, json={"display_name": "lost"}, headers=headers), 428)
    # A weak tag of the right version is accepted (proxies that compress weaken ETags).
    ok = await plain.patch(
        url, json={"display_name": "v1"}, headers=headers | {"If-Match": 'W/"0"'}
    )
    assert ok.status_code == 200 and ok.headers["ETag"] == '"1"'
    stale = await plain.patch(url, json={"display_name": "x"}, headers=headers | {"If-Match": "0"})
    assert problem(stale, 412)["detail"].startswith("precondition failed")
    user = await plain.patch(url, json={"display_name": "v2"}, headers=headers | {"If-Match": "1"})
    assert user.status_code == 200 and user.json() == {"display_name": "v2"}


async def test_unbounded_int_in_a_service_is_the_layers_422(
    plain: httpx.AsyncClient, shared_tenant: str
) -> None:
    headers = {"X-Tenant-ID": shared_tenant}
    url = f"/history/{PydanticObjectId()}"
    for seq in (HUGE, -1, INT64_MAX + 1):
        body = problem(await plain.get(url, params={"newer_than": seq}, headers=headers), 422)
        assert body["fields"] == ["newer_than"]
    body = problem(await plain.get(url, params={"newer_than": "x"}, headers=headers), 422)
    assert body["fields"] == ["newer_than"]  # FastAPI's own 422, in the same body
    # A conversation that does not exist is named in a 404, not an empty page.
    missing = await plain.get(url, params={"newer_than": INT64_MAX}, headers=headers)
    assert missing.status_code == 404


async def test_history_cursors_never_answer_500(
    chat: httpx.AsyncClient, shared_tenant: str
) -> None:
    tenant = await set_up(chat, shared_tenant)
    await send(chat, tenant, "alice", "hello")
    alice = tenant.headers("alice")
    url = f"/conversations/{tenant.direct}/messages"
    bad: list[tuple[dict[str, Any], str]] = [
        ({"newer_than": HUGE}, "newer_than"),
        ({"after": HUGE}, "after"),
        ({"newer_than": INT64_MAX + 1}, "newer_than"),
        ({"newer_than": -1}, "newer_than"),
        ({"after": -1}, "after"),
        ({"after": "abc"}, "after"),
        ({"newer_than": "1e3"}, "newer_than"),
        ({"newer_than": "²"}, "newer_than"),
        ({"limit": HUGE}, "limit"),
        ({"limit": "many"}, "limit"),
    ]
    for params, field in bad:
        body = problem(await chat.get(url, params=params, headers=alice), 422)
        assert body["fields"] == [field], (params, body)
    newest = await chat.get(url, params={"newer_than": 0}, headers=alice)
    assert [m["text"] for m in newest.json()["items"]] == ["hello"]
    read = f"/conversations/{tenant.direct}/read"
    for seq in (HUGE, -1, "x"):
        body = problem(await chat.post(read, json={"seq": seq}, headers=alice), 422)
        assert body["fields"] == ["seq"], (seq, body)
    receipt = await chat.post(read, json={"seq": INT64_MAX}, headers=alice)
    assert receipt.status_code == 200 and receipt.json()["last_read_seq"] == 1
