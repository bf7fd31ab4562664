"""SubscriptionRecord.items (the MRR panel's narrow copy of each snapshot's items), filled for existing
rows; RevenueEntry's (project, occurred_at) index made covering for revenue per day."""

from typing import Any

from django.db import migrations, models

from apps.entitlements.models import subscription_items

BATCH = 1000


def fill_items(apps: Any, schema_editor: Any) -> None:
    # Keyset batches by pk: a bounded transaction-sized chunk of snapshots in memory at a time.
    record_model = apps.get_model("entitlements", "SubscriptionRecord")
    last_pk = 0
    while True:
        batch = list(record_model.objects.filter(pk__gt=last_pk).order_by("pk").only("pk", "stripe_data")[:BATCH])
        if not batch:
            return
        for record in batch:
            record.items = subscription_items(record.stripe_data)
        record_model.objects.bulk_update(batch, ["items"])
        last_pk = batch[-1].pk


class Migration(migrations.Migration):
    dependencies = [
        ("entitlements", "0004_purchase_invoice_line"),
        ("projects", "0003_project_allow_multiple_subscriptions"),
    ]

    operations = [
        migrations.AddField(
            model_name="subscriptionrecord",
            name="items",
            field=models.JSONField(default=list),
        ),
        migrations.RunPython(fill_items, migrations.RunPython.noop),
        # The new index first: the old one keeps serving queries until the covering one exists.
        migrations.AddIndex(
            model_name="revenueentry",
            index=models.Index(
                fields=["project", "occurred_at"],
                include=("kind", "currency", "amount"),
                name="revenue_entry_project_day",
            ),
        ),
        migrations.RemoveIndex(
            model_name="revenueentry",
            name="entitlement_project_461aa4_idx",
        ),
    ]
