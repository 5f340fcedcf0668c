"""Client-side costs of the layer's hot paths, without the server: where the time goes.

Each figure is microseconds of this process's CPU per call (median of a few rounds), next to
what the same step costs with plain pydantic, so a change to one step shows as its own ratio.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bson import ObjectId

from benchmarks import models as m
from benchmarks.timing import median
from caas_data import DataLayer, tenant_scope
from caas_data.documents.base import utcnow
from caas_data.documents.loading import load_stored
from caas_data.documents.writes import dump_document
from caas_data.driver_errors import translate_driver_errors


def _cpu_us(call: Callable[[], Any], number: int, rounds: int = 5) -> float:
    out = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(number):
            call()
        out.append((time.process_time() - start) / number)
    return median(out) * 1e6


def _stored(data: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    now = utcnow()
    return {
        **data, "_id": ObjectId(), "tenant_id": tenant_id, "__v": 0, "created_at": now,
        "updated_at": now, "schema_version": 1,
    }  # fmt: skip


async def client_costs(layer: DataLayer, tenant_id: str, number: int) -> dict[str, float]:
    """us of CPU per call of each hot step, and its plain-pydantic counterpart."""
    data = m.Data()
    small, large = _stored(data.small(1), tenant_id), _stored(data.large(1), tenant_id)
    out: dict[str, float] = {}
    out["load small (ours, the read path's loader)"] = _cpu_us(
        lambda: load_stored(m.OurSmall, small), number
    )
    out["load small (ours, model_validate)"] = _cpu_us(
        lambda: m.OurSmall.model_validate(small), number
    )
    out["load small (plain pydantic)"] = _cpu_us(lambda: m.TypedSmall.model_validate(small), number)
    document = m.OurLarge.model_validate(large)
    typed = m.TypedLarge.model_validate(large)
    out["dump large (ours)"] = _cpu_us(lambda: dump_document(document), number)
    out["dump large (plain pydantic)"] = _cpu_us(lambda: typed.model_dump(by_alias=True), number)

    def translate() -> None:
        with translate_driver_errors(tenant_id=tenant_id, document_type=m.OurSmall):
            pass

    out["error translation (one use)"] = _cpu_us(translate, number)
    repo = layer.repo(m.LargeRepository)
    out["update validation, one field of a large document"] = _cpu_us(
        lambda: repo._schema.apply_changes(document, {"counter": 7}), number
    )
    async with tenant_scope(tenant_id, layer=layer):
        out["routing (a guarded handle per call)"] = _cpu_us(
            lambda: layer.collection(m.OurSmall), number
        )
        out["repository construction"] = _cpu_us(lambda: layer.repo(m.SmallRepository), number)
    return out
