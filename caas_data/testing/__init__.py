"""Testing kit: the server choice and pytest fixtures, for this project and its users.

The server choice (`start_test_server`): `CAAS_MONGODB_URI` when set; else a testcontainers
MongoDB when a Docker engine answers; else the embedded SecantusDB server (`caas-data[embedded]`),
which runs as a separate process and is never imported.
"""

from caas_data.testing._server import (
    RestartableServer,
    ServerHandle,
    TestServer,
    start_test_server,
)
from caas_data.testing.factories import Factories
from caas_data.testing.helpers import (
    TEST_MONITOR_TIMEOUT_MS,
    TEST_OPERATION_TIMEOUT_MS,
    connect_for_tests,
    drop_prefix_databases,
    new_prefix,
    new_tenant_id,
    patient_uri,
)

__all__ = [
    "TEST_MONITOR_TIMEOUT_MS",
    "TEST_OPERATION_TIMEOUT_MS",
    "Factories",
    "RestartableServer",
    "ServerHandle",
    "TestServer",
    "connect_for_tests",
    "drop_prefix_databases",
    "new_prefix",
    "new_tenant_id",
    "patient_uri",
    "start_test_server",
]
