"""A tenant's onboarding, end to end: client, application, API key, plan, subscription, first
usage records, and the audit trail they left.

Run it with `python examples/onboarding.py`. It uses `CAAS_MONGODB_URI` when set, otherwise it
starts a throwaway test server; either way it works in databases of its own and drops them.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from caas_data import Tier, connect, system_scope, tenant_scope
from caas_data.documents.base import utcnow
from caas_data.documents.billing import UsageMetric
from caas_data.repositories.analytics.audit import AuditLogRepository
from caas_data.repositories.analytics.events import EventRepository, ensure_events_collection
from caas_data.repositories.billing.invoices import InvoiceRepository
from caas_data.repositories.billing.subscriptions import (
    PlanRepository,
    SubscriptionRepository,
    UsageRecordRepository,
)
from caas_data.repositories.platform.api_keys import ApiKeyRepository
from caas_data.repositories.platform.directory import ApplicationRepository
from caas_data.testing import drop_prefix_databases, new_prefix, start_test_server

TENANT = "acme-chat"


async def onboard(uri: str) -> None:
    layer = await connect(uri, database_prefix=new_prefix())
    try:
        storage = await ensure_events_collection(layer)
        print(f"events collection: {storage} (detected on this server)")

        # The platform's catalogue (done once, platform-wide).
        async with system_scope():
            await layer.repo(PlanRepository).create_many(
                [
                    {
                        "code": "starter",
                        "name": "Starter",
                        "tier": Tier.STARTER,
                        "price_cents": 900,
                    },
                    {"code": "pro", "name": "Pro", "tier": Tier.PRO, "price_cents": 4900},
                ]
            )

        # 1. The client: a directory entry and its collections (shared model for STARTER).
        client = await layer.tenants.provision(TENANT, tier=Tier.STARTER, name="Acme Chat")
        print(f"client {client.tenant_id}: tier {client.tier}, data in {client.placement.database}")
        async with system_scope():  # application code can add its own entries to the trail
            await layer.repo(AuditLogRepository).append(
                "tenant.onboarded",
                tenant_id=TENANT,
                actor="signup-flow",
                details={"plan": "starter"},
            )

        async with tenant_scope(TENANT):
            # 2. An application and an API key for it: the secret is shown this once.
            app = await layer.repo(ApplicationRepository).create({"name": "acme-web"})
            issued = await layer.repo(ApiKeyRepository).issue(
                "web backend",
                scopes=["messages", "users:read"],
                application_id=app.id,
                actor="owner@acme.test",
            )
            print(f"API key (copy it now, it is not stored): {issued.secret}")

            # 3. The first subscription, then an upgrade: the move to PRO is only recorded.
            subscriptions = layer.repo(SubscriptionRepository)
            await subscriptions.subscribe("starter", actor="owner@acme.test")
            await subscriptions.change_plan("pro", actor="billing-webhook")

        # 4. A request arrives with the key: it names its tenant and scopes.
        principal = await layer.repo(ApiKeyRepository).authenticate(issued.secret)
        print(f"key authenticates as {principal.tenant_id} with {sorted(principal.scopes)}")

        async with tenant_scope(principal.tenant_id):
            # 5. First usage, reported with idempotency keys (the retry counts once).
            usage = layer.repo(UsageRecordRepository)
            await usage.record(UsageMetric.MESSAGES_SENT, 120, idempotency_key="day1-msgs")
            await usage.record(UsageMetric.MESSAGES_SENT, 120, idempotency_key="day1-msgs")
            await usage.record(UsageMetric.MONTHLY_ACTIVE_USERS, 14, idempotency_key="day1-mau")
            await layer.repo(EventRepository).record("message.sent", user_id="u-1")
            now = utcnow()
            totals = await usage.totals(now - timedelta(days=1), now + timedelta(days=1))
            print("usage so far:", {str(k): v for k, v in totals.items()})

            invoices = layer.repo(InvoiceRepository)
            draft = await invoices.draft([{"description": "Pro plan", "unit_amount_cents": 4900}])
            invoice = await invoices.issue(draft.id)
            amount = f"{invoice.total_cents / 100:.2f} {invoice.currency}"
            print(f"invoice {invoice.display_number}: {amount}")

        directory = await layer.tenants.get(TENANT)
        print(f"tier {directory.tier}, pending change to {directory.pending_tier} (nothing moved)")

        # 6. The audit trail the onboarding left, and its verification.
        async with tenant_scope(TENANT):
            audit = layer.repo(AuditLogRepository)
            for entry in (await audit.trail()).items:
                print(
                    f"  #{entry.seq} {entry.action:<32} by {entry.actor or '-':<18} {entry.details}"
                )
            report = await audit.verify_chain()
            print(f"audit chain intact: {report.ok} ({report.checked} entries)")
    finally:
        await drop_prefix_databases(layer)
        await layer.close()


def main() -> None:
    import os

    uri = os.environ.get("CAAS_MONGODB_URI")
    if uri:
        asyncio.run(onboard(uri))
        return
    server = start_test_server()
    try:
        print(f"using {server.handle.description}")
        asyncio.run(onboard(server.handle.uri))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
