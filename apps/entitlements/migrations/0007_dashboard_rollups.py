"""The dashboard's rollups: each subscription's exact monthly amount as plain columns (filled from
`items`), a covering (project, status) index and date indexes for the subscription panels, and
RevenueDay (the ledger's daily totals, filled from the ledger)."""

import datetime as dt
from typing import Any

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate

from apps.entitlements.models import subscription_mrr

BATCH = 1000
MRR_FIELDS = ["mrr_currency", "mrr_numerator", "mrr_denominator", "mrr_items"]


def fill_mrr_columns(apps: Any, schema_editor: Any) -> None:
    # Keyset batches by pk, as 0005 filled `items`.
    record_model = apps.get_model("entitlements", "SubscriptionRecord")
    last_pk = 0
    while True:
        batch = list(record_model.objects.filter(pk__gt=last_pk).order_by("pk").only("pk", "items")[:BATCH])
        if not batch:
            return
        for record in batch:
            values = subscription_mrr(record.items if isinstance(record.items, list) else [])
            for name, value in zip(MRR_FIELDS, values, strict=True):
                setattr(record, name, value)
        record_model.objects.bulk_update(batch, MRR_FIELDS)
        last_pk = batch[-1].pk


def fill_revenue_days(apps: Any, schema_editor: Any) -> None:
    # As revenue_days.revenue_days_rebuild, on the historical models.
    entry_model = apps.get_model("entitlements", "RevenueEntry")
    day_model = apps.get_model("entitlements", "RevenueDay")
    groups = (
        entry_model.objects.annotate(day=TruncDate("occurred_at", tzinfo=dt.UTC))
        .values("project_id", "day", "currency")
        .annotate(
            gross=Sum("amount", filter=Q(kind="payment"), default=0),
            refunded=Sum("amount", filter=Q(kind="refund"), default=0),
            entries=Count("id"),
        )
        .order_by()
    )
    totals: dict[tuple[int, dt.date, str], Any] = {}
    for group in groups:
        key = (group["project_id"], group["day"], str(group["currency"]).lower())
        row = totals.setdefault(key, day_model(project_id=key[0], day=key[1], currency=key[2]))
        row.gross += group["gross"]
        row.refunded += group["refunded"]
        row.entries += group["entries"]
    day_model.objects.bulk_create(totals.values(), batch_size=BATCH)


class Migration(migrations.Migration):

    dependencies = [
        ('entitlements', '0006_revenueentry_user_id'),
        ('projects', '0003_project_allow_multiple_subscriptions'),
    ]

    operations = [
        migrations.CreateModel(
            name='RevenueDay',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField()),
                ('currency', models.CharField(max_length=3)),
                ('gross', models.BigIntegerField(default=0)),
                ('refunded', models.BigIntegerField(default=0)),
                ('entries', models.PositiveIntegerField(default=0)),
            ],
            options={
                'verbose_name': 'revenue day',
            },
        ),
        migrations.AddField(
            model_name='subscriptionrecord',
            name='mrr_currency',
            field=models.CharField(blank=True, default='', max_length=3),
        ),
        migrations.AddField(
            model_name='subscriptionrecord',
            name='mrr_denominator',
            field=models.PositiveIntegerField(default=12),
        ),
        migrations.AddField(
            model_name='subscriptionrecord',
            name='mrr_items',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='subscriptionrecord',
            name='mrr_numerator',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddIndex(
            model_name='subscriptionrecord',
            index=models.Index(fields=['project', 'status'], include=('mrr_currency', 'mrr_numerator', 'mrr_denominator', 'mrr_items'), name='subscription_project_status'),
        ),
        migrations.AddIndex(
            model_name='subscriptionrecord',
            index=models.Index(fields=['project', 'created_at'], name='subscription_project_created'),
        ),
        migrations.AddIndex(
            model_name='subscriptionrecord',
            index=models.Index(fields=['project', 'ended_at'], name='subscription_project_ended'),
        ),
        migrations.AddField(
            model_name='revenueday',
            name='project',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='projects.project'),
        ),
        migrations.RunPython(fill_mrr_columns, migrations.RunPython.noop),
        migrations.RunPython(fill_revenue_days, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='revenueday',
            constraint=models.UniqueConstraint(fields=('project', 'day', 'currency'), name='revenue_day_unique'),
        ),
            # The covering index serves queries before the plain one goes.
        migrations.RemoveIndex(
            model_name='subscriptionrecord',
            name='entitlement_project_13ac85_idx',
        ),
    ]
