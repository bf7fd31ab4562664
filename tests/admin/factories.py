"""One factory per model of ours that the admin shows, so that tests open real change pages.

`ADMIN_ROW_FACTORIES` maps each registered model to the factory that makes a row of it; the page
tests (test_every_admin_page.py) fail for a registered model that has neither a factory here nor an
entry, with its reason, in `EXEMPT_FROM_ROWS`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.contrib.auth.models import Group
from django.db.models import Model
from django_celery_beat import models as beat
from djstripe import models as djstripe_models
from factory.declarations import LazyAttribute, SelfAttribute, Sequence, SubFactory
from factory.django import DjangoModelFactory

from apps.catalog.models import CatalogProduct, OptionGroup, PriceFeature
from apps.checkout.models import BillingCustomer, CheckoutSession, PortalSession
from apps.entitlements.models import AuditLog, Entitlement, Grant, Purchase, RevenueEntry, SubscriptionRecord
from apps.projects.models import ApiKey, App, Project
from apps.webhooks.models import ProcessorEvent, ReplayRun

NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


class ProjectFactory(DjangoModelFactory[Project]):
    class Meta:
        model = Project

    name = Sequence(lambda n: f"Project {n}")
    slug = Sequence(lambda n: f"project-{n}")
    allowed_redirect_prefixes = LazyAttribute(lambda p: [f"https://{p.slug}.example/"])
    feature_codes = ["pro", "export"]


class AppFactory(DjangoModelFactory[App]):
    class Meta:
        model = App

    project = SubFactory(ProjectFactory)
    name = Sequence(lambda n: f"app-{n}")
    scopes = ["entitlements:read"]


class ApiKeyFactory(DjangoModelFactory[ApiKey]):
    class Meta:
        model = ApiKey

    app = SubFactory(AppFactory)
    label = "factory"
    prefix = Sequence(lambda n: f"fact{n:04d}")
    digest = "0" * 64


class CatalogProductFactory(DjangoModelFactory[CatalogProduct]):
    class Meta:
        model = CatalogProduct

    project = SubFactory(ProjectFactory)
    slug = Sequence(lambda n: f"product-{n}")
    name = Sequence(lambda n: f"Product {n}")
    unit_amount = 1500
    currency = "usd"


class OptionGroupFactory(DjangoModelFactory[OptionGroup]):
    class Meta:
        model = OptionGroup

    product = SubFactory(CatalogProductFactory)
    name = Sequence(lambda n: f"Size {n}")


class PriceFeatureFactory(DjangoModelFactory[PriceFeature]):
    class Meta:
        model = PriceFeature

    project = SubFactory(ProjectFactory)
    stripe_price_id = Sequence(lambda n: f"price_factory{n}")
    feature_code = "pro"


class BillingCustomerFactory(DjangoModelFactory[BillingCustomer]):
    class Meta:
        model = BillingCustomer

    project = SubFactory(ProjectFactory)
    user_id = Sequence(lambda n: f"user_{n}")
    stripe_customer_id = Sequence(lambda n: f"cus_factory{n}")


class CheckoutSessionFactory(DjangoModelFactory[CheckoutSession]):
    class Meta:
        model = CheckoutSession

    customer = SubFactory(BillingCustomerFactory)
    project = SelfAttribute("customer.project")
    user_id = SelfAttribute("customer.user_id")
    mode = CheckoutSession.Mode.SUBSCRIPTION
    stripe_price_id = "price_factory"
    success_url = "https://example.invalid/success"
    cancel_url = "https://example.invalid/cancel"
    status = CheckoutSession.Status.OPEN
    stripe_session_id = Sequence(lambda n: f"cs_factory{n}")
    url = "https://checkout.example.invalid/pay"


class PortalSessionFactory(DjangoModelFactory[PortalSession]):
    class Meta:
        model = PortalSession

    customer = SubFactory(BillingCustomerFactory)
    project = SelfAttribute("customer.project")
    return_url = "https://example.invalid/account"
    stripe_session_id = Sequence(lambda n: f"bps_factory{n}")


class GrantFactory(DjangoModelFactory[Grant]):
    class Meta:
        model = Grant

    project = SubFactory(ProjectFactory)
    user_id = Sequence(lambda n: f"user_{n}")
    feature_code = "pro"
    granted_by = "support"
    reason = "goodwill"
    valid_from = NOW


class EntitlementFactory(DjangoModelFactory[Entitlement]):
    class Meta:
        model = Entitlement

    project = SubFactory(ProjectFactory)
    user_id = Sequence(lambda n: f"user_{n}")
    feature_code = "pro"
    source = Entitlement.Source.GRANT
    source_id = Sequence(lambda n: n + 1)
    valid_from = NOW
    computed_at = NOW


class SubscriptionRecordFactory(DjangoModelFactory[SubscriptionRecord]):
    class Meta:
        model = SubscriptionRecord

    project = SubFactory(ProjectFactory)
    user_id = Sequence(lambda n: f"user_{n}")
    stripe_subscription_id = Sequence(lambda n: f"sub_factory{n}")
    stripe_customer_id = "cus_factory"
    status = "active"
    price_ids = ["price_factory"]
    current_period_start = NOW
    current_period_end = NOW + dt.timedelta(days=30)


class PurchaseFactory(DjangoModelFactory[Purchase]):
    class Meta:
        model = Purchase

    project = SubFactory(ProjectFactory)
    user_id = Sequence(lambda n: f"user_{n}")
    stripe_price_id = "price_factory"
    feature_code = "export"
    stripe_checkout_session_id = Sequence(lambda n: f"cs_paid{n}")
    stripe_payment_intent_id = Sequence(lambda n: f"pi_factory{n}")
    amount = 4900
    currency = "usd"
    valid_from = NOW


class RevenueEntryFactory(DjangoModelFactory[RevenueEntry]):
    class Meta:
        model = RevenueEntry

    project = SubFactory(ProjectFactory)
    kind = RevenueEntry.Kind.PAYMENT
    stripe_object_id = Sequence(lambda n: f"pi_revenue{n}")
    amount = 4900
    currency = "usd"
    occurred_at = NOW


class AuditLogFactory(DjangoModelFactory[AuditLog]):
    class Meta:
        model = AuditLog

    project = SubFactory(ProjectFactory)
    actor = "support"
    action = "grant.create"
    target = "grant #1"
    reason = "goodwill"
    after = {"feature_code": "pro"}


class ProcessorEventFactory(DjangoModelFactory[ProcessorEvent]):
    class Meta:
        model = ProcessorEvent

    stripe_event_id = Sequence(lambda n: f"evt_factory{n}")
    type = "customer.subscription.updated"
    created = NOW
    payload = LazyAttribute(lambda e: {"id": e.stripe_event_id, "type": e.type, "data": {"object": {}}})
    raw_body = "{}"
    headers = {"Stripe-Signature": "t=0,v1=redacted"}
    project = SubFactory(ProjectFactory)
    status = ProcessorEvent.Status.PROCESSED
    changes = ["subscription sub_1 active"]


class ReplayRunFactory(DjangoModelFactory[ReplayRun]):
    class Meta:
        model = ReplayRun

    project = SubFactory(ProjectFactory)
    requested_by = "admin:support"
    reason = "a handler bug was fixed"
    params = {"event_ids": ["evt_factory0"]}
    status = ReplayRun.Status.SUCCEEDED
    counts = {"selected": 1, "processed": 1}
    finished_at = NOW


class GroupFactory(DjangoModelFactory[Group]):
    class Meta:
        model = Group

    name = Sequence(lambda n: f"group {n}")


class IntervalScheduleFactory(DjangoModelFactory[beat.IntervalSchedule]):
    class Meta:
        model = beat.IntervalSchedule

    every = 5
    period = beat.IntervalSchedule.MINUTES


class CrontabScheduleFactory(DjangoModelFactory[beat.CrontabSchedule]):
    class Meta:
        model = beat.CrontabSchedule

    minute = "0"
    hour = "3"


class SolarScheduleFactory(DjangoModelFactory[beat.SolarSchedule]):
    class Meta:
        model = beat.SolarSchedule

    event = "sunrise"
    latitude = 48.85
    longitude = 2.35


class ClockedScheduleFactory(DjangoModelFactory[beat.ClockedSchedule]):
    class Meta:
        model = beat.ClockedSchedule

    clocked_time = NOW


class PeriodicTaskFactory(DjangoModelFactory[beat.PeriodicTask]):
    class Meta:
        model = beat.PeriodicTask

    name = Sequence(lambda n: f"factory task {n}")
    task = "webhooks.sweep"
    interval = SubFactory(IntervalScheduleFactory)


def _user() -> Model:
    from django.contrib.auth import get_user_model

    user: Model = get_user_model().objects.create_user("factory-user", "factory@example.invalid", "pw")
    return user


def _stripe_product() -> Model:
    # dj-stripe rows normally come from Stripe syncs; these two carry what its admin pages read.
    product: Model = djstripe_models.Product.objects.create(
        id="prod_factory", stripe_data={"id": "prod_factory", "name": "Pro"}
    )
    return product


def _stripe_price() -> Model:
    if not djstripe_models.Product.objects.filter(id="prod_factory").exists():
        _stripe_product()
    price: Model = djstripe_models.Price.objects.create(
        id="price_factory",
        product_id="prod_factory",
        active=True,
        stripe_data={
            "id": "price_factory",
            "product": "prod_factory",
            "unit_amount": 1500,
            "currency": "usd",
            "active": True,
            "recurring": {"interval": "month", "interval_count": 1},
        },
    )
    return price


ADMIN_ROW_FACTORIES: dict[str, Callable[[], Model]] = {
    "projects.project": ProjectFactory.create,
    "projects.app": AppFactory.create,
    "projects.apikey": ApiKeyFactory.create,
    "catalog.catalogproduct": CatalogProductFactory.create,
    "catalog.optiongroup": OptionGroupFactory.create,
    "catalog.pricefeature": PriceFeatureFactory.create,
    "checkout.billingcustomer": BillingCustomerFactory.create,
    "checkout.checkoutsession": CheckoutSessionFactory.create,
    "checkout.portalsession": PortalSessionFactory.create,
    "entitlements.grant": GrantFactory.create,
    "entitlements.entitlement": EntitlementFactory.create,
    "entitlements.subscriptionrecord": SubscriptionRecordFactory.create,
    "entitlements.purchase": PurchaseFactory.create,
    "entitlements.revenueentry": RevenueEntryFactory.create,
    "entitlements.auditlog": AuditLogFactory.create,
    "webhooks.processorevent": ProcessorEventFactory.create,
    "webhooks.replayrun": ReplayRunFactory.create,
    "auth.user": _user,
    "auth.group": GroupFactory.create,
    "django_celery_beat.intervalschedule": IntervalScheduleFactory.create,
    "django_celery_beat.crontabschedule": CrontabScheduleFactory.create,
    "django_celery_beat.solarschedule": SolarScheduleFactory.create,
    "django_celery_beat.clockedschedule": ClockedScheduleFactory.create,
    "django_celery_beat.periodictask": PeriodicTaskFactory.create,
    "djstripe.product": _stripe_product,
    "djstripe.price": _stripe_price,
}

# dj-stripe's models are mirrors of Stripe objects, filled by syncs and webhooks, with dozens of
# interlinked shapes: their changelists are always opened; their change pages where a row exists.
# Every model of any other app needs a factory above, or an entry here with its reason.
THIRD_PARTY_MIRRORS = frozenset({"djstripe"})
EXEMPT_FROM_ROWS: dict[str, str] = {}


def make_admin_rows() -> dict[str, Model]:
    """One row of every model with a factory, keyed by its label (lower case)."""
    rows: dict[str, Model] = {}
    for label, make in ADMIN_ROW_FACTORIES.items():
        rows[label] = make()
    return rows
