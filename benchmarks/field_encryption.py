"""Field encryption: client CPU time (process_time) encrypted/plain, same server, same run.

The machine is shared, so wall time is noisy; the client CPU the encryption adds is not.
`python -m benchmarks.field_encryption`
"""

import asyncio
import os
import time

from caas_data import EncryptionOptions, Tier, tenant_scope
from caas_data.saas import User, UserRepository
from caas_data.testing import start_test_server
from caas_data.testing.helpers import connect_for_tests, drop_prefix_databases

N = 400


async def run(uri, encryption):
    layer = await connect_for_tests(uri, encryption=encryption)
    try:
        await layer.tenants.provision("bench-t", tier=Tier.FREE)
        async with tenant_scope("bench-t", layer=layer):
            users = layer.repo(UserRepository)
            await users.create({"external_id": "warm", "display_name": "w", "email": "warm@x.io"})
            t0 = time.process_time()
            for i in range(N):
                await users.create(
                    {"external_id": f"u{i}", "display_name": "U", "email": f"u{i}@x.io"}
                )
            t1 = time.process_time()
            for i in range(N):
                found = await User.find_one(User.email == f"u{i}@x.io")
                assert found is not None
            t2 = time.process_time()
            await users.find({}, limit=400)
            for _ in range(5):
                await users.find({}, limit=400)
            t3 = time.process_time()
        return t1 - t0, t2 - t1, t3 - t2
    finally:
        await drop_prefix_databases(layer)
        await layer.close()


async def main():
    server = start_test_server()
    try:
        uri = server.handle.uri
        enc = EncryptionOptions.local(os.urandom(96), personal_fields=True)
        for round_ in range(4):
            if round_ % 2:
                crypt = await run(uri, enc)
                plain = await run(uri, None)
            else:
                plain = await run(uri, None)
                crypt = await run(uri, enc)
            names = ("create", "find_one by email", "page of 400 (x5)")
            print(
                f"round {round_}: "
                + ", ".join(
                    f"{n}: {c / p:.2f}x" for n, p, c in zip(names, plain, crypt, strict=False)
                )
            )
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
