"""The FastAPI integration attacked over HTTP (in-process, httpx's ASGI transport).

The example chat service (examples/chat_api.py) behind a trusted tenant header, the same
service behind API keys, and a small route using `if_match_version`. No request may answer
500, return the victim's data, or change it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import Depends, FastAPI

from caas_data import DataLayer
from caas_data.fastapi import (
    attach_layer,
    if_match_version,
    install_error_handlers,
    repository,
    require_version,
    tenant_from_api_key,
    tenant_from_trusted_header,
)
from caas_data.saas import UserRepository

from .conftest import Seeded, World, attack


def _load_chat_api() -> ModuleType:
    name = "caas_security_chat_api"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[2] / "examples" / "chat_api.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the models' annotations through it
    spec.loader.exec_module(module)
    return module


def _version_app(layer: DataLayer) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    users_dep = Depends(repository(UserRepository))

    @app.patch("/users/{user_id}", dependencies=[Depends(tenant_from_trusted_header())])
    async def rename(
        user_id: str,
        body: dict[str, str],
        expected: int = Depends(if_match_version),
        users: UserRepository = users_dep,
    ) -> dict[str, str]:
        user = await users.get(user_id)
        require_version(user, expected)
        updated = await users.update(user, display_name=body["display_name"])
        return {"display_name": updated.display_name}

    attach_layer(app, layer)
    return app


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def apps(world: World) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    chat_api = _load_chat_api()
    built = {
        "header": chat_api.create_app(world.layer),
        "api_key": chat_api.create_app(world.layer, tenant=tenant_from_api_key()),
        "version": _version_app(world.layer),
    }
    clients = {
        name: httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://caas",
        )
        for name, app in built.items()
    }
    yield clients
    for client in clients.values():
        await client.aclose()


def _as(attacker: Seeded) -> dict[str, str]:
    return {"X-Tenant-ID": attacker.tenant_id, "X-User-ID": str(attacker.user_ids[0])}


# name -> (app, method, path, json body, extra headers); {conv}/{msg}/{user}/{me} filled in.
REQUESTS: dict[str, tuple[str, str, str, Any, dict[str, str]]] = {
    "history_of_victim_chat": ("header", "GET", "/conversations/{conv}/messages", None, {}),
    "send_to_victim_chat": ("header", "POST", "/conversations/{conv}/messages",
                            {"text": "pwned"}, {}),
    "read_victim_chat": ("header", "POST", "/conversations/{conv}/read", {"seq": 1}, {}),
    "react_to_victim_message": ("header", "POST", "/messages/{msg}/reactions",
                                {"emoji": "x"}, {}),
    "open_direct_with_victim_user": ("header", "POST", "/conversations",
                                     {"kind": "direct", "with_user_id": "{user}"}, {}),
    "act_as_victim_user": ("header", "GET", "/conversations", None, {"X-User-ID": "{user}"}),
    "history_before_10_30": ("header", "GET",
                             "/conversations/{own_conv}/messages?before=" + "1" + "0" * 30,
                             None, {}),
    "history_after_negative": ("header", "GET", "/conversations/{own_conv}/messages?after=-1",
                               None, {}),
    "history_limit_huge": ("header", "GET",
                           "/conversations/{own_conv}/messages?limit=" + "9" * 40, None, {}),
    "users_cursor_garbage": ("header", "GET", "/users?after=" + "A" * 4000, None, {}),
    "users_cursor_huge_int": ("header", "GET",
                              "/users?after=WzEwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwXQ", None, {}),
    "api_key_with_victim_header": ("api_key", "GET", "/users", None,
                                   {"X-Tenant-ID": "{victim}"}),
    "api_key_victim_chat": ("api_key", "GET", "/conversations/{conv}/messages", None, {}),
    "if_match_superscript": ("version", "PATCH", "/users/{me}", {"display_name": "x"},
                             {"If-Match": '"\u00b2"'}),
    "if_match_5000_digits": ("version", "PATCH", "/users/{me}", {"display_name": "x"},
                             {"If-Match": '"' + "9" * 5000 + '"'}),
    "if_match_negative": ("version", "PATCH", "/users/{me}", {"display_name": "x"},
                          {"If-Match": '"-1"'}),
    "if_match_arabic_digit": ("version", "PATCH", "/users/{me}", {"display_name": "x"},
                              {"If-Match": '"\u0663"'}),
    "patch_victim_user": ("version", "PATCH", "/users/{user}", {"display_name": "pwned"},
                          {"If-Match": '"0"'}),
}  # fmt: skip


def _wire(value: str) -> bytes:
    """A header value as bytes: latin-1 where it fits (what servers decode), else UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


def _fill(text: str, attacker: Seeded, victim: Seeded) -> str:
    return (
        text.replace("{conv}", str(victim.conversation_id))
        .replace("{own_conv}", str(attacker.conversation_id))
        .replace("{msg}", str(victim.message_ids[0]))
        .replace("{user}", str(victim.user_ids[0]))
        .replace("{me}", str(attacker.user_ids[0]))
        .replace("{victim}", victim.tenant_id)
    )


@pytest.mark.parametrize("case", list(REQUESTS))
async def test_http_request_never_500_never_victim_data(
    world: World, attacker: Seeded, apps: dict[str, httpx.AsyncClient], case: str
) -> None:
    victim = world.shared_victim
    app, method, path, body, extra = REQUESTS[case]
    headers = _as(attacker) | {k: _fill(v, attacker, victim) for k, v in extra.items()}
    if app == "api_key":
        headers = {k: v for k, v in headers.items() if k != "X-User-ID"}
        headers["X-API-Key"] = attacker.api_key_secret
    if isinstance(body, dict):
        body = {k: _fill(v, attacker, victim) if isinstance(v, str) else v for k, v in body.items()}
    url = _fill(path, attacker, victim)
    sent = {str(i) for i in (victim.conversation_id, victim.message_ids[0], victim.user_ids[0])}

    async def call() -> dict[str, Any]:
        raw_headers = {k: _wire(v) for k, v in headers.items()}
        response = await apps[app].request(method, url, json=body, headers=raw_headers)
        text = response.text
        for echoed in sent:  # the id the caller sent may come back in an error message
            text = text.replace(echoed, "<sent id>")
        return {"status": response.status_code, "text": text}

    outcome = await attack(world, attacker.tenant_id, call, f"HTTP {case}", scoped=False)
    assert outcome.result["status"] < 500, f"{case} answered {outcome.result['status']}"
    leaked = [str(i) for i in (victim.user_ids + victim.message_ids) if str(i) in
              outcome.result["text"]]  # fmt: skip
    assert not leaked, f"{case} returned victim ids {leaked}"
