"""RevenueEntry.user_id: whose money each ledger row is, filled for existing rows where it is knowable.

Payments are keyed by their payment intent (stripe_object_id), refunds carry theirs
(stripe_payment_intent_id) and their charge. In order, each step filling only rows still blank:
1. set-based UPDATEs from the rows that name the payment's user: the purchase, our invoice and our
   checkout session with the same payment intent in the same project;
2. the payment_intent.succeeded and charge.refunded events that recorded the rows: the user they were
   routed to at receipt, else their customer's (our customer link, or the subscription record of that
   customer: a subscription invoice's payment has no purchase). Read in keyset batches by pk, each
   batch updating by the ledger's indexed ids;
3. a refund with no user yet takes the payment row's of its payment intent.
Rows nothing links to stay "": the admin shows them as "-".
"""

from typing import Any

from django.db import migrations, models
from django.db.models import Exists, OuterRef, Subquery

BATCH = 1000


def _fill_from(entries: Any, rows: Any, key: str) -> None:
    """Sets user_id on blank `entries` from the first of `rows` whose (project, payment intent) match."""
    linked = rows.filter(project_id=OuterRef("project_id"), stripe_payment_intent_id=OuterRef(key)).exclude(
        stripe_payment_intent_id=""
    )
    entries.filter(user_id="").exclude(**{key: ""}).filter(Exists(linked)).update(
        user_id=Subquery(linked.order_by("pk").values("user_id")[:1])
    )


def _event_user(event: Any, customers: dict[tuple[int, str], str]) -> str:
    if event.user_id:
        return str(event.user_id)
    obj = ((event.payload or {}).get("data") or {}).get("object") or {}
    customer = obj.get("customer") if isinstance(obj, dict) else None
    customer = customer.get("id") if isinstance(customer, dict) else customer
    return customers.get((event.project_id, customer), "") if isinstance(customer, str) else ""


def _customers(apps: Any, pairs: set[tuple[int, str]]) -> dict[tuple[int, str], str]:
    """(project, Stripe customer) -> user, from our customer links, then the subscription records."""
    found: dict[tuple[int, str], str] = {}
    ids = {customer for _, customer in pairs}
    for model in (apps.get_model("checkout", "BillingCustomer"), apps.get_model("entitlements", "SubscriptionRecord")):
        for project_id, customer, user_id in model.objects.filter(stripe_customer_id__in=ids).values_list(
            "project_id", "stripe_customer_id", "user_id"
        ):
            found.setdefault((project_id, customer), user_id)
    return found


def _customer_pairs(events: list[Any]) -> set[tuple[int, str]]:
    pairs: set[tuple[int, str]] = set()
    for event in events:
        obj = ((event.payload or {}).get("data") or {}).get("object") or {}
        customer = obj.get("customer") if isinstance(obj, dict) else None
        customer = customer.get("id") if isinstance(customer, dict) else customer
        if not event.user_id and isinstance(customer, str) and customer:
            pairs.add((event.project_id, customer))
    return pairs


def _fill_from_events(apps: Any, entries: Any) -> None:
    event_model = apps.get_model("webhooks", "ProcessorEvent")
    types = {
        "payment_intent.succeeded": ("payment", "stripe_object_id"),
        "charge.refunded": ("refund", "stripe_charge_id"),
    }
    events = event_model.objects.filter(type__in=types, project__isnull=False).order_by("pk")
    last_pk = 0
    while True:
        batch = list(events.filter(pk__gt=last_pk).only("pk", "type", "project_id", "user_id", "payload")[:BATCH])
        if not batch:
            return
        last_pk = batch[-1].pk
        customers = _customers(apps, _customer_pairs(batch))
        for event in batch:
            obj = ((event.payload or {}).get("data") or {}).get("object") or {}
            object_id = obj.get("id") if isinstance(obj, dict) else None
            user_id = _event_user(event, customers)
            if not isinstance(object_id, str) or not object_id or not user_id:
                continue
            kind, key = types[event.type]
            entries.filter(user_id="", kind=kind, project_id=event.project_id, **{key: object_id}).update(
                user_id=user_id[:255]
            )


def fill_user_id(apps: Any, schema_editor: Any) -> None:
    entries = apps.get_model("entitlements", "RevenueEntry").objects
    payments, refunds = entries.filter(kind="payment"), entries.filter(kind="refund")
    for model in (
        apps.get_model("entitlements", "Purchase"),
        apps.get_model("checkout", "Invoice"),
        apps.get_model("checkout", "CheckoutSession"),
    ):
        _fill_from(payments, model.objects.all(), "stripe_object_id")
        _fill_from(refunds, model.objects.all(), "stripe_payment_intent_id")
    _fill_from_events(apps, entries)
    paid = payments.filter(
        project_id=OuterRef("project_id"), stripe_object_id=OuterRef("stripe_payment_intent_id")
    ).exclude(user_id="")
    refunds.filter(user_id="").exclude(stripe_payment_intent_id="").filter(Exists(paid)).update(
        user_id=Subquery(paid.values("user_id")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("entitlements", "0005_subscription_items_revenue_covering_index"),
        ("projects", "0003_project_allow_multiple_subscriptions"),
        ("checkout", "0003_invoices_and_hosted_sessions"),
        ("webhooks", "0003_replayrun_error"),
    ]

    operations = [
        migrations.AddField(
            model_name="revenueentry",
            name="user_id",
            field=models.CharField(blank=True, default="", max_length=255),
        ),
        migrations.RunPython(fill_user_id, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="revenueentry",
            index=models.Index(fields=["project", "user_id"], name="revenue_entry_project_user"),
        ),
    ]
