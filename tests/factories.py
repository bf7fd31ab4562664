"""factory-boy factories for the models tests build by hand, and one row of every model the admin shows.

Tests call `XFactory()` (or `.create(...)`/`.build(...)`) with only the fields the test is about; the
rest are valid defaults, unique where the model needs it. Rows whose creation is the behaviour under
test (a key hashed by `api_key_create`, a grant written by `grant_create`, a session by the checkout
service) still go through the service.

`ADMIN_ROW_FACTORIES` maps each registered admin model to what makes a row of it; the page tests
(tests/admin/test_every_admin_page.py) fail for a registered model that has neither a factory here nor
an entry, with its reason, in `EXEMPT_FROM_ROWS`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import Group, User
from django.db.models import Model
from django_celery_beat import models as beat
from djstripe import models as djstripe_models
from factory.declarations import LazyAttribute, SelfAttribute, Sequence, SubFactory
from factory.django import DjangoModelFactory

from apps.catalog.models import CatalogProduct, CatalogSyncRun, CustomField, OptionGroup, PriceFeature
from apps.checkout.models import BillingCustomer, CheckoutSession, PortalSession
from apps.common.models import AuditLog, IdempotencyRecord, JobPolicy, JobRun
from apps.entitlements.models import Entitlement, Grant, Purchase, RevenueEntry, SubscriptionRecord
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


class CustomFieldFactory(DjangoModelFactory[CustomField]):
    class Meta:
        model = CustomField

    product = SubFactory(CatalogProductFactory)
    key = Sequence(lambda n: f"field-{n}")
    label = Sequence(lambda n: f"Field {n}")
    field_type = CustomField.FieldType.TEXT


class CatalogSyncRunFactory(DjangoModelFactory[CatalogSyncRun]):
    """A finished sync; `status=CatalogSyncRun.Status.RUNNING, finished_at=None` for one in flight."""

    class Meta:
        model = CatalogSyncRun

    project = SubFactory(ProjectFactory)
    requested_by = "cli:factory"
    status = CatalogSyncRun.Status.SUCCEEDED
    counts = {"products": 1, "prices": 1, "skipped": 0}
    finished_at = NOW


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


class IdempotencyRecordFactory(DjangoModelFactory[IdempotencyRecord]):
    """A request still in progress (no status yet); give `status_code` and `response_body` for an answered one.

    `project_id` is a plain integer column, so the project is a parameter: `project=tenant.project`.
    """

    class Meta:
        model = IdempotencyRecord

    class Params:
        project = SubFactory(ProjectFactory)

    project_id = SelfAttribute("project.pk")
    key = Sequence(lambda n: f"idem-key-{n}")
    method_path = "POST /api/v1/admin/grant"
    request_hash = "0" * 64


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


class UserFactory(DjangoModelFactory[User]):
    """A staff-less user; `SuperuserFactory` for the admin's support staff. Passwords are hashed."""

    class Meta:
        model = User

    username = Sequence(lambda n: f"user-{n}")
    email = LazyAttribute(lambda u: f"{u.username}@example.invalid")
    password = "pw-for-tests"

    @classmethod
    def _create(cls, model_class: type[User], *args: Any, **kwargs: Any) -> User:
        # The manager's create_user hashes the password, as the login form expects.
        return model_class.objects.create_user(*args, **kwargs)


class SuperuserFactory(UserFactory):
    username = Sequence(lambda n: f"support-{n}")

    @classmethod
    def _create(cls, model_class: type[User], *args: Any, **kwargs: Any) -> User:
        return model_class.objects.create_superuser(*args, **kwargs)


def _user() -> Model:
    user: Model = UserFactory.create(username="factory-user", email="factory@example.invalid", password="pw")
    return user


class StripeProductFactory(DjangoModelFactory[djstripe_models.Product]):
    """A dj-stripe product mirror; normally a Stripe sync writes it. Only `stripe_data` is read.

    `stripe_name` is the product's name at Stripe (in `stripe_data`, where dj-stripe reads it).
    """

    class Meta:
        model = djstripe_models.Product

    class Params:
        stripe_name = "Pro"

    id = Sequence(lambda n: f"prod_factory{n}")
    stripe_data = LazyAttribute(lambda p: {"id": p.id, "name": p.stripe_name})


class StripePriceFactory(DjangoModelFactory[djstripe_models.Price]):
    """A dj-stripe price mirror, monthly by default; `recurring=None` for a one-time price (no key)."""

    class Meta:
        model = djstripe_models.Price

    class Params:
        unit_amount = 1500
        recurring: dict[str, Any] | None = {"interval": "month", "interval_count": 1}

    id = Sequence(lambda n: f"price_stripe{n}")
    product = SubFactory(StripeProductFactory)
    active = True
    stripe_data = LazyAttribute(
        lambda p: (
            {
                "id": p.id,
                "product": p.product.id,
                "unit_amount": p.unit_amount,
                "currency": "usd",
                "active": p.active,
            }
            | ({"recurring": p.recurring} if p.recurring is not None else {})
        )
    )


def _stripe_product() -> Model:
    # dj-stripe rows normally come from Stripe syncs; these two carry what its admin pages read.
    product: Model = StripeProductFactory.create(id="prod_factory")
    return product


def _stripe_price() -> Model:
    product = djstripe_models.Product.objects.filter(id="prod_factory").first() or _stripe_product()
    price: Model = StripePriceFactory.create(id="price_factory", product=product)
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
    "common.auditlog": AuditLogFactory.create,
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


class JobPolicyFactory(DjangoModelFactory[JobPolicy]):
    """The declared defaults of a job named after the first beat_schedule entry unless given."""

    class Meta:
        model = JobPolicy
        django_get_or_create = ("job",)

    job = "scheduler-heartbeat"


class JobRunFactory(DjangoModelFactory[JobRun]):
    """A finished scheduled run of the heartbeat job; give `outcome="running"` for one still going."""

    class Meta:
        model = JobRun

    job = "scheduler-heartbeat"
    trigger = JobRun.Trigger.SCHEDULED
    attempt = 1
    outcome = JobRun.Outcome.SUCCEEDED
    started_at = LazyAttribute(lambda _: dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    finished_at = LazyAttribute(lambda run: None if run.outcome == "running" else run.started_at)
