"""Suite-wide settings: tests under integration/ and security/ need a server (the plugin's)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings

# CI: 25 examples of 12 steps for the foundation's state machine (the chat machine runs a
# fifth of them), reported as found: shrinking against the embedded server can take longer
# than the whole suite. `--hypothesis-profile=deep` is a long hunt that also shrinks.
settings.register_profile(
    "default",
    max_examples=25,
    stateful_step_count=12,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "deep",
    max_examples=500,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("default")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path) or "/security/" in str(item.path):
            item.add_marker(pytest.mark.integration)
