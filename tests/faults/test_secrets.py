"""Secrets never appear in logs, reprs, exceptions or error bodies.

Plants API key material, a session token, a push token and an admin password, drives the
calls that handle them through faults (closed connections, duplicates, invalid input), and
greps every log record and exception text seen: this test's, and the fault suites' that ran
before it in this worker (`EVIDENCE`).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from caas_data import CaasDataError, DataLayer, tenant_scope
from caas_data.platform import AdminRole, ApiKeyRepository, PlatformAdminRepository
from caas_data.repositories.saas.users import hash_session_token
from caas_data.saas import DevicePlatform, UserDeviceRepository, UserSessionRepository
from caas_data.testing import Factories
from tests.faults.conftest import EVIDENCE, fail_point, note_error

SESSION_TOKEN = "sess-" + "S3cr3tS3ssion" * 3
PUSH_TOKEN = "push-" + "S3cr3tPush" * 4
PASSWORD = "Corr3ct-Horse-Battery-Staple-42"


async def _attempt(call: Any) -> None:
    try:
        await call
    except CaasDataError as exc:
        note_error(exc)


async def test_no_secret_in_any_log_record_repr_or_exception_text(
    layer: DataLayer, raw: Any, pro_tenant: str
) -> None:
    async with tenant_scope(pro_tenant, layer=layer):
        factories = Factories(layer)
        (user,) = await factories.users(1)
        issued = await factories.api_key()
        keys = layer.repo(ApiKeyRepository)
        sessions = layer.repo(UserSessionRepository)
        devices = layer.repo(UserDeviceRepository)
        session = await sessions.issue(user.id, SESSION_TOKEN, lifetime=timedelta(hours=1))
        await _attempt(sessions.issue(user.id, SESSION_TOKEN, lifetime=timedelta(hours=1)))
        device = await devices.register(
            user.id, "phone-1", platform=DevicePlatform.IOS, push_token=PUSH_TOKEN
        )
        await _attempt(
            devices.register(
                user.id, "phone-2", platform=DevicePlatform.IOS, push_token=PUSH_TOKEN * 200
            )
        )
        for command in ("find", "insert", "findAndModify", "update"):
            async with fail_point(raw, {"times": 1}, failCommands=[command], closeConnection=True):
                await _attempt(keys.authenticate(issued.secret))
            async with fail_point(raw, {"times": 1}, failCommands=[command], closeConnection=True):
                await _attempt(sessions.authenticate(SESSION_TOKEN))
            async with fail_point(raw, {"times": 1}, failCommands=[command], closeConnection=True):
                await _attempt(
                    devices.register(
                        user.id, "phone-1", platform=DevicePlatform.IOS, push_token=PUSH_TOKEN
                    )
                )
        await _attempt(keys.authenticate(issued.secret + "x"))
        EVIDENCE.extend([repr(issued), repr(issued.key), repr(session), repr(device)])
    admins = layer.repo(PlatformAdminRepository)
    email = f"{pro_tenant}@example.com"
    admin = await admins.register(email, PASSWORD, display_name="Ops", roles=[AdminRole.ADMIN])
    await _attempt(admins.register(email, PASSWORD, display_name="Ops", roles=[AdminRole.ADMIN]))
    EVIDENCE.append(repr(admin))

    secrets = {
        "api key": issued.secret,
        "api key hash": issued.key.key_hash,
        "session token": SESSION_TOKEN,
        "session token hash": hash_session_token(SESSION_TOKEN),
        "push token": PUSH_TOKEN,
        "password": PASSWORD,
        "password hash": admin.password_hash,
        "sha256 of the api key": hashlib.sha256(issued.secret.encode()).hexdigest(),
    }
    text = "\n".join(EVIDENCE)
    assert len(EVIDENCE) > 10  # the test did see errors and records to grep
    leaks = [name for name, value in secrets.items() if value and value in text]
    assert leaks == [], f"secrets found in logs/reprs/exceptions: {leaks}"
