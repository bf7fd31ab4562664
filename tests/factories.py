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
from apps.checkout.models import BillingCustomer, CheckoutSession, Invoice, InvoiceLine, PortalSession
from apps.common.models import AuditLog, IdempotencyRecord, JobPolicy, JobRun
from apps.entitlements.models import Entitlement, Grant, Purchase, RevenueEntry, SubscriptionRecord
from apps.entitlements.notifications.models import Delivery, DeliveryAttempt, Notification, NotificationEndpoint
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


class InvoiceFactory(DjangoModelFactory[Invoice]):
    """A draft invoice of 3000 usd (its customer has no Stripe customer yet, as invoice_create leaves
    it). Lines are separate: `InvoiceLineFactory(invoice=...)`; amounts are not re-added up."""

    class Meta:
        model = Invoice

    customer = SubFactory(BillingCustomerFactory, stripe_customer_id=None)
    project = SelfAttribute("customer.project")
    user_id = SelfAttribute("customer.user_id")
    currency = "usd"
    status = Invoice.Status.DRAFT
    subtotal = 3000
    total = 3000
    created_by = "app:factory"


class InvoiceLineFactory(DjangoModelFactory[InvoiceLine]):
    """2 x 1500 of a product of the invoice's project, with the breakdown pricing would store."""

    class Meta:
        model = InvoiceLine

    invoice = SubFactory(InvoiceFactory)
    position = Sequence(lambda n: n % 30_000)
    product = SubFactory(CatalogProductFactory, project=SelfAttribute("..invoice.project"))
    product_name = SelfAttribute("product.name")
    quantity = 2
    base_amount = 1500
    unit_amount = 1500
    line_total = LazyAttribute(lambda line: line.unit_amount * line.quantity)
    breakdown = LazyAttribute(
        lambda line: {
            "currency": "usd",
            "base": line.base_amount,
            "options": [],
            "add_ons": [],
            "before_plan": line.unit_amount,
            "plan": None,
            "unit_amount": line.unit_amount,
            "quantity": line.quantity,
            "line_total": line.line_total,
        }
    )


def _invoice_with_a_line() -> Model:
    # The change page shows the lines inline, breakdown included: one line, so that it renders.
    invoice: Model = InvoiceLineFactory.create().invoice
    return invoice


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


class NotificationEndpointFactory(DjangoModelFactory[NotificationEndpoint]):
    """An enabled endpoint of every type; its secret is made by the model's default, as the service's is."""

    class Meta:
        model = NotificationEndpoint

    app = SubFactory(AppFactory)
    url = Sequence(lambda n: f"https://hooks.example/{n}")


class NotificationFactory(DjangoModelFactory[Notification]):
    class Meta:
        model = Notification

    project = SubFactory(ProjectFactory)
    type = "entitlements.updated"
    user_id = Sequence(lambda n: f"user_{n}")
    data = LazyAttribute(lambda n: {"user_id": n.user_id, "version": 1, "entitlements": []})
    created_at = NOW


class DeliveryFactory(DjangoModelFactory[Delivery]):
    """A delivery that failed once (502): `status="delivered"` etc. for others; attempts are separate."""

    class Meta:
        model = Delivery

    notification = SubFactory(NotificationFactory)
    endpoint = SubFactory(NotificationEndpointFactory, app__project=SelfAttribute("...notification.project"))
    status = Delivery.Status.PENDING
    attempts = 1
    last_status_code = 502
    next_attempt_at = NOW
    created_at = NOW


class DeliveryAttemptFactory(DjangoModelFactory[DeliveryAttempt]):
    class Meta:
        model = DeliveryAttempt

    delivery = SubFactory(DeliveryFactory)
    number = 1
    attempted_at = NOW
    status_code = 502
    duration_ms = 40
    response_body = "bad gateway"


def _notification_with_an_attempt() -> Model:
    # The notification's page shows its deliveries with their attempts: one of each, so that it renders.
    notification: Model = DeliveryAttemptFactory.create().delivery.notification
    return notification


def _delivery_with_an_attempt() -> Model:
    delivery: Model = DeliveryAttemptFactory.create().delivery
    return delivery


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
    "checkout.invoice": _invoice_with_a_line,
    "entitlements.grant": GrantFactory.create,
    "entitlements.entitlement": EntitlementFactory.create,
    "entitlements.subscriptionrecord": SubscriptionRecordFactory.create,
    "entitlements.purchase": PurchaseFactory.create,
    "entitlements.revenueentry": RevenueEntryFactory.create,
    "entitlements.notificationendpoint": NotificationEndpointFactory.create,
    "entitlements.notification": _notification_with_an_attempt,
    "entitlements.delivery": _delivery_with_an_attempt,
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
    "catalog.stripeproduct": _stripe_product,  # the dj-stripe mirror, shown under the catalog
    "catalog.stripeprice": _stripe_price,
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


ADMIN_ROW_FACTORIES.update({"common.jobpolicy": JobPolicyFactory.create, "common.jobrun": JobRunFactory.create})


def invoice_with_lines(
    *,
    project: Project,
    user_id: str = "user_42",
    lines: list[dict[str, Any]] | None = None,
    status: str = "draft",
    currency: str = "usd",
) -> Invoice:
    """An invoice as invoice_create leaves it (amounts already priced), for tests of what follows it.

    Each line: `name`, `unit_amount`, `quantity` (1), `feature_code` (""), `purchase_duration_days` (None).
    The user's customer row is reused or created without a Stripe customer, as invoice_create does.
    """
    customer, _ = BillingCustomer.objects.get_or_create(project=project, user_id=user_id)
    specs = lines if lines is not None else [{"name": "Report", "unit_amount": 1500, "quantity": 2}]
    totals = [spec["unit_amount"] * spec.get("quantity", 1) for spec in specs]
    invoice = Invoice.objects.create(
        project=project,
        customer=customer,
        user_id=user_id,
        currency=currency,
        status=status,
        subtotal=sum(totals),
        total=sum(totals),
        created_by="factory",
    )
    for position, (spec, total) in enumerate(zip(specs, totals, strict=True)):
        product = CatalogProductFactory.create(
            project=project, name=spec["name"], unit_amount=spec["unit_amount"], currency=currency
        )
        InvoiceLine.objects.create(
            invoice=invoice,
            position=position,
            product=product,
            product_name=spec["name"],
            quantity=spec.get("quantity", 1),
            base_amount=spec["unit_amount"],
            unit_amount=spec["unit_amount"],
            line_total=total,
            breakdown={"base": spec["unit_amount"], "unit_amount": spec["unit_amount"], "line_total": total},
            feature_code=spec.get("feature_code", ""),
            purchase_duration_days=spec.get("purchase_duration_days"),
        )
    return invoice


# --- recovery (apps/recovery) --------------------------------------------------------------------

from apps.recovery.models import RecoveryAttempt, RecoveryRun  # noqa: E402 - appended section


class RecoveryRunFactory(DjangoModelFactory[RecoveryRun]):
    """A finished scheduled recovery run; `status="running", finished_at=None` for one in progress."""

    class Meta:
        model = RecoveryRun

    trigger = RecoveryRun.Trigger.SCHEDULED
    status = RecoveryRun.Status.SUCCEEDED
    started_at = NOW
    finished_at = NOW
    counts = {"examined": 1, "expired": 2, "abandoned": 1, "recovered": 1, "notified": 1, "failed": 0}
    errors: list[str] = []


class RecoveryAttemptFactory(DjangoModelFactory[RecoveryAttempt]):
    """Attempt 1 on an abandoned session of an open invoice: Stripe's recovery URL, emailed."""

    class Meta:
        model = RecoveryAttempt

    session = SubFactory(
        CheckoutSessionFactory,
        mode=CheckoutSession.Mode.PAYMENT,
        stripe_price_id="",
        status=CheckoutSession.Status.ABANDONED,
        invoice=SubFactory(InvoiceFactory, customer=SelfAttribute("..customer"), status=Invoice.Status.OPEN),
        recovery_url="https://checkout.example.invalid/recover",
        recovery_attempts=1,
    )
    run = SubFactory(RecoveryRunFactory)
    number = 1
    method = RecoveryAttempt.Method.STRIPE_RECOVERY_URL
    url = SelfAttribute("session.recovery_url")
    channel = RecoveryAttempt.Channel.EMAIL
    notified_channels = ["email"]
    notification_status = RecoveryAttempt.NotificationStatus.SENT
    notification_tries = 1
    notified_at = NOW


# Declared after ADMIN_ROW_FACTORIES, so added to it here.
ADMIN_ROW_FACTORIES.update(
    {
        "recovery.recoveryrun": RecoveryRunFactory.create,
        "recovery.recoveryattempt": RecoveryAttemptFactory.create,
    }
)


# --- reconciliation (apps/reconciliation) ----------------------------------------------------------

from apps.reconciliation.models import Discrepancy, ReconciliationRun, SyncCursor  # noqa: E402 - appended section


class ReconciliationRunFactory(DjangoModelFactory[ReconciliationRun]):
    """A finished full run of its own project; `status="running", finished_at=None` for one in progress
    (at most one per project). `started_at` is stamped on creation."""

    class Meta:
        model = ReconciliationRun

    project = SubFactory(ProjectFactory)
    trigger = ReconciliationRun.Trigger.SCHEDULED
    mode = ReconciliationRun.Mode.FULL
    status = ReconciliationRun.Status.SUCCEEDED
    finished_at = LazyAttribute(lambda run: None if run.status == "running" else dt.datetime.now(dt.UTC))
    counts = {"subscription": {"checked": 3, "drift_found": 1, "corrected": 0, "left_open": 1, "errors": 0}}
    summary = {"subscriptions_checked": 3, "purchases_checked": 0, "drift_detected": 1, "corrected": 0, "left_open": 1}
    cursors = {"subscription": {"starting_after": "", "pages": 1, "objects_seen": 3}}
    stripe_requests = 1
    db_writes = 1
    duration_ms = 1200
    requested_by = "beat"


class DiscrepancyFactory(DjangoModelFactory[Discrepancy]):
    """An open subscription status drift found by a run of its own project."""

    class Meta:
        model = Discrepancy

    run = SubFactory(ReconciliationRunFactory)
    project = SelfAttribute("run.project")
    kind = "subscription_status"
    object_type = "subscription"
    stripe_id = Sequence(lambda n: f"sub_factory{n}")
    user_id = "user_42"
    local_value = {"status": "active"}
    stripe_value = {"status": "canceled"}


class SyncCursorFactory(DjangoModelFactory[SyncCursor]):
    """A full listing of subscriptions stopped after 3 pages (where a resumed run goes on)."""

    class Meta:
        model = SyncCursor

    run = SubFactory(ReconciliationRunFactory)
    project = SelfAttribute("run.project")
    object_type = "subscription"
    mode = ReconciliationRun.Mode.FULL
    starting_after = Sequence(lambda n: f"sub_cursor{n}")
    pages = 3
    objects_seen = 300


ADMIN_ROW_FACTORIES.update(
    {
        "reconciliation.reconciliationrun": ReconciliationRunFactory.create,
        "reconciliation.discrepancy": DiscrepancyFactory.create,
        "reconciliation.synccursor": SyncCursorFactory.create,
    }
)
