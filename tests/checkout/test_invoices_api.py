"""The invoice endpoints: create (priced from the catalog, checked by hand), list, read, void and mark
uncollectible, and every refusal: a 4xx naming the problem, with nothing written and no Stripe call.

Alice owns a configured product, "Website audit" (4900 usd), with:
- Size, single choice, required: Small +0, Large +500;
- Extras, multiple choice: Accessibility review +1250, Mobile pass +300;
- add-ons: Priority support +900, Voucher -9000 (more than any unit: a unit below zero);
- custom fields: domain (text, required), website (url), seats (number 1..500);
- plans: Prepaid 5% off (x 0.95), Monthly (+0).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.catalog.models import AddOn, CatalogProduct, CustomField, Option, OptionGroup, SubscriptionPlan
from apps.checkout.invoices.pricing import lines_price
from apps.checkout.models import BillingCustomer, Invoice, InvoiceLine
from apps.common.models import AuditLog, IdempotencyRecord
from apps.projects.services import app_create
from tests.conftest import Tenant
from tests.factories import CatalogProductFactory, InvoiceFactory, InvoiceLineFactory
from tests.transaction_guard import StripeRequests, stripe_requests

__all__ = ["stripe_requests"]  # the fixture, imported for this module's tests

pytestmark = pytest.mark.django_db

INVOICES = "/api/v1/billing/invoices"


@dataclass
class Catalog:
    audit: CatalogProduct
    small: int
    large: int
    accessibility: int
    mobile: int
    support: int
    voucher: int
    prepaid: int
    monthly: int
    setup: CatalogProduct


def configured_catalog(tenant: Tenant) -> Catalog:
    audit = CatalogProductFactory.create(
        project=tenant.project,
        slug="website-audit",
        name="Website audit",
        unit_amount=4900,
        currency="usd",
        feature_code="audit",
        purchase_duration_days=365,
    )
    size = OptionGroup.objects.create(product=audit, name="Size", selection="single", required=True, position=0)
    extras = OptionGroup.objects.create(product=audit, name="Extras", selection="multiple", position=1)
    small = Option.objects.create(group=size, name="Small", price_delta=0, position=0)
    large = Option.objects.create(group=size, name="Large", price_delta=500, position=1)
    accessibility = Option.objects.create(group=extras, name="Accessibility review", price_delta=1250, position=0)
    mobile = Option.objects.create(group=extras, name="Mobile pass", price_delta=300, position=1)
    support = AddOn.objects.create(product=audit, name="Priority support", price_delta=900, position=0)
    voucher = AddOn.objects.create(product=audit, name="Voucher", price_delta=-9000, position=1)
    CustomField.objects.create(product=audit, key="domain", label="Domain", field_type="text", required=True)
    CustomField.objects.create(product=audit, key="website", label="Website", field_type="url", position=1)
    CustomField.objects.create(
        product=audit, key="seats", label="Seats", field_type="number", min_value=1, max_value=500, position=2
    )
    prepaid = SubscriptionPlan.objects.create(
        product=audit, name="Prepaid 5% off", billing_cycle="one_time", price_multiplier="0.95", position=0
    )
    monthly = SubscriptionPlan.objects.create(
        product=audit, name="Monthly", billing_cycle="monthly", price_delta=0, position=1
    )
    setup = CatalogProductFactory.create(
        project=tenant.project, slug="setup", name="Setup", unit_amount=2500, currency="usd"
    )
    return Catalog(
        audit=audit,
        small=small.pk,
        large=large.pk,
        accessibility=accessibility.pk,
        mobile=mobile.pk,
        support=support.pk,
        voucher=voucher.pk,
        prepaid=prepaid.pk,
        monthly=monthly.pk,
        setup=setup,
    )


@pytest.fixture
def catalog(alice: Tenant) -> Catalog:
    return configured_catalog(alice)


def audit_line(catalog: Catalog, **changes: Any) -> dict[str, Any]:
    return {
        "product_id": catalog.audit.pk,
        "option_ids": [catalog.large, catalog.accessibility, catalog.mobile],
        "add_on_ids": [catalog.support],
        "plan_id": catalog.prepaid,
        "quantity": 2,
        "custom_fields": {"domain": "  shop.example.com ", "website": "https://shop.example.com/", "seats": "5"},
    } | changes


def invoice_body(tenant: Tenant, lines: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    return {"user_id": "user_42", "project_id": tenant.project.pk, "currency": "usd", "lines": lines} | changes


def row_counts() -> dict[str, int]:
    return {
        "invoices": Invoice.objects.count(),
        "lines": InvoiceLine.objects.count(),
        "customers": BillingCustomer.objects.count(),
        "audit": AuditLog.objects.count(),
    }


# --- create --------------------------------------------------------------------------------------------


def test_an_invoice_built_from_a_configured_product_has_the_total_worked_out_by_hand(
    alice: Tenant, catalog: Catalog, stripe_requests: StripeRequests
) -> None:
    due = (timezone.now() + dt.timedelta(days=30)).replace(microsecond=0)
    body = invoice_body(
        alice,
        [audit_line(catalog), {"product_id": catalog.setup.pk}],
        due_at=due.isoformat().replace("+00:00", "Z"),
    )
    response = alice.client().post(INVOICES, body, format="json")

    assert response.status_code == 201, response.json()
    invoice = response.json()
    # Line 1: 4900 + 500 (Large) + 1250 (Accessibility) + 300 (Mobile) + 900 (Priority support) = 7850;
    # x 0.95 = 7457.5, rounded half to even = 7458; x 2 = 14916. Line 2: 2500 x 1. Total 17416.
    assert [(line["unit_amount"], line["quantity"], line["line_total"]) for line in invoice["lines"]] == [
        (7458, 2, 14916),
        (2500, 1, 2500),
    ]
    assert (invoice["subtotal"], invoice["total"], invoice["currency"], invoice["status"]) == (
        17416,
        17416,
        "usd",
        "draft",
    )
    assert invoice["url"] == f"{INVOICES}/{invoice['id']}"
    assert invoice["sessions_url"] == f"/api/v1/billing/sessions?invoice_id={invoice['id']}"
    assert invoice["project_id"] == alice.project.pk and invoice["user_id"] == "user_42"
    assert invoice["due_at"] == due.isoformat().replace("+00:00", "Z")
    assert invoice["paid_at"] is invoice["voided_at"] is invoice["marked_uncollectible_at"] is None

    first = invoice["lines"][0]
    assert first["position"] == 0 and first["product_id"] == catalog.audit.pk
    assert (first["product_name"], first["base_amount"]) == ("Website audit", 4900)
    assert (first["feature_code"], first["purchase_duration_days"]) == ("audit", 365)
    # Validated values: text trimmed, the number as an integer.
    assert first["custom_fields"] == {"domain": "shop.example.com", "website": "https://shop.example.com/", "seats": 5}
    assert [(o["name"], o["group"], o["delta"]) for o in first["options"]] == [
        ("Large", "Size", 500),
        ("Accessibility review", "Extras", 1250),
        ("Mobile pass", "Extras", 300),
    ]
    assert first["add_ons"] == [{"id": catalog.support, "name": "Priority support", "delta": 900}]
    assert first["plan"] == {
        "id": catalog.prepaid,
        "name": "Prepaid 5% off",
        "billing_cycle": "one_time",
        "multiplier": "0.95",
        "delta": None,
    }
    breakdown = first["breakdown"]
    assert (breakdown["base"], breakdown["before_plan"], breakdown["unit_amount"]) == (4900, 7850, 7458)
    assert breakdown["plan"]["exact"] == "7457.5" and breakdown["plan"]["rounding"] == "half_even"
    assert (breakdown["quantity"], breakdown["line_total"], breakdown["currency"]) == (2, 14916, "usd")
    second = invoice["lines"][1]
    assert (second["options"], second["add_ons"], second["plan"], second["custom_fields"]) == ([], [], None, {})
    assert second["breakdown"]["plan"] is None

    # What was stored is what was answered, and nothing went to Stripe.
    stored = Invoice.objects.get(pk=invoice["id"])
    assert (stored.total, stored.status, stored.created_by) == (
        17416,
        "draft",
        f"app:app (key {alice.key.split('_')[1]})",
    )
    assert list(stored.lines.order_by("position").values_list("line_total", flat=True)) == [14916, 2500]
    assert alice.client().get(invoice["url"]).json() == invoice
    assert stripe_requests.seen == []


def test_creating_an_invoice_makes_the_customer_row_only_and_reuses_it(
    alice: Tenant, catalog: Catalog, stripe_requests: StripeRequests
) -> None:
    body = invoice_body(alice, [{"product_id": catalog.setup.pk}])
    first = alice.client().post(INVOICES, body, format="json").json()
    second = alice.client().post(INVOICES, body, format="json").json()
    customer = BillingCustomer.objects.get(project=alice.project, user_id="user_42")
    assert customer.stripe_customer_id is None  # created at Stripe with the first hosted session
    assert set(Invoice.objects.filter(pk__in=[first["id"], second["id"]]).values_list("customer", flat=True)) == {
        customer.pk
    }
    assert stripe_requests.seen == []


def test_the_options_of_a_delta_plan_and_no_optional_values_are_fine(alice: Tenant, catalog: Catalog) -> None:
    line = {"product_id": catalog.audit.pk, "option_ids": [catalog.small], "plan_id": catalog.monthly}
    line["custom_fields"] = {"domain": "a.example"}
    response = alice.client().post(INVOICES, invoice_body(alice, [line]), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["total"] == 4900
    assert response.json()["lines"][0]["breakdown"]["plan"]["delta"] == 0


# --- refusals: a 400 naming the problem, and nothing written -------------------------------------------


def _refusal_cases(catalog: Catalog, bob_product: CatalogProduct, eur_product: CatalogProduct) -> dict[str, Any]:
    audit = f"product {catalog.audit.pk} ('website-audit')"
    other_option = Option.objects.get(group__product=bob_product).pk
    return {
        "an option of another product": (
            [audit_line(catalog, option_ids=[catalog.large, other_option])],
            {"lines": {"0": {"option_ids": {"1": [f"Option {other_option} is not an option of {audit}."]}}}},
        ),
        "two options of a single-choice group": (
            [audit_line(catalog, option_ids=[catalog.small, catalog.mobile, catalog.large])],
            {
                "lines": {
                    "0": {
                        "option_ids": {
                            "2": [
                                f"Group 'Size' takes a single option: {catalog.small} ('Small') and "
                                f"{catalog.large} ('Large') were both chosen."
                            ]
                        }
                    }
                }
            },
        ),
        "a required group without a choice": (
            [audit_line(catalog, option_ids=[catalog.mobile])],
            {
                "lines": {
                    "0": {
                        "option_ids": [
                            f"Group 'Size' is required: choose one of its options ({catalog.small}, {catalog.large})."
                        ]
                    }
                }
            },
        ),
        "a required custom field left out": (
            [audit_line(catalog, custom_fields={"website": "https://a.example/"})],
            {"lines": {"0": {"custom_fields": {"domain": ["This field is required."]}}}},
        ),
        "a bad url custom field": (
            [audit_line(catalog, custom_fields={"domain": "a.example", "website": "shop dot example"})],
            {
                "lines": {
                    "0": {"custom_fields": {"website": ["Enter a valid http or https URL of at most 2000 characters."]}}
                }
            },
        ),
        "a number custom field out of its bounds, and an unknown one": (
            [audit_line(catalog, custom_fields={"domain": "a.example", "seats": 501, "colour": "red"})],
            {
                "lines": {
                    "0": {
                        "custom_fields": {
                            "colour": ["Unknown custom field."],
                            "seats": ["Ensure this value is less than or equal to 500."],
                        }
                    }
                }
            },
        ),
        "an out-of-range delta (a unit below zero)": (
            [audit_line(catalog, add_on_ids=[catalog.voucher], option_ids=[catalog.small], plan_id=None)],
            {
                "lines": {
                    "0": {
                        "unit_amount": [
                            "Out of range: the unit amount after options, add-ons and plan is -4100; "
                            "it must be from 0 to 99999999 (minor units)."
                        ]
                    }
                }
            },
        ),
        "a currency mismatch": (
            [audit_line(catalog), {"product_id": eur_product.pk}],
            {
                "lines": {
                    "1": {
                        "product_id": [
                            f"Currency mismatch: product {eur_product.pk} ('{eur_product.slug}') is priced in eur, "
                            "this invoice is in usd."
                        ]
                    }
                }
            },
        ),
        "a product of another project": (
            [{"product_id": bob_product.pk}],
            {"lines": {"0": {"product_id": [f"Product {bob_product.pk} is not a product of this project."]}}},
        ),
        "a plan and an add-on of another product": (
            [audit_line(catalog, add_on_ids=[catalog.support, 10**12], plan_id=10**12)],
            {
                "lines": {
                    "0": {
                        "add_on_ids": {"1": [f"Add-on {10**12} is not an add-on of {audit}."]},
                        "plan_id": [f"Plan {10**12} is not a plan of {audit}."],
                    }
                }
            },
        ),
    }


REFUSALS = [
    "an option of another product",
    "two options of a single-choice group",
    "a required group without a choice",
    "a required custom field left out",
    "a bad url custom field",
    "a number custom field out of its bounds, and an unknown one",
    "an out-of-range delta (a unit below zero)",
    "a currency mismatch",
    "a product of another project",
    "a plan and an add-on of another product",
]


@pytest.fixture
def others(bob: Tenant, alice: Tenant) -> tuple[CatalogProduct, CatalogProduct]:
    bob_product = CatalogProductFactory.create(project=bob.project, slug="bobs", unit_amount=100, currency="usd")
    group = OptionGroup.objects.create(product=bob_product, name="Size", selection="single")
    Option.objects.create(group=group, name="Huge", price_delta=1)
    eur = CatalogProductFactory.create(project=alice.project, slug="eur-audit", unit_amount=20_000, currency="eur")
    return bob_product, eur


@pytest.mark.parametrize("case", REFUSALS)
def test_a_bad_line_is_a_400_naming_the_problem_and_nothing_is_written(
    alice: Tenant,
    catalog: Catalog,
    others: tuple[CatalogProduct, CatalogProduct],
    case: str,
    stripe_requests: StripeRequests,
) -> None:
    lines, expected = _refusal_cases(catalog, *others)[case]
    before = row_counts()
    response = alice.client().post(INVOICES, invoice_body(alice, lines), format="json")
    assert response.status_code == 400
    assert response.json() == expected
    assert row_counts() == before
    assert stripe_requests.seen == []


def test_a_line_total_out_of_range_names_the_quantity(
    alice: Tenant, others: tuple[CatalogProduct, CatalogProduct]
) -> None:
    _, eur = others
    before = row_counts()
    response = alice.client().post(
        INVOICES, invoice_body(alice, [{"product_id": eur.pk, "quantity": 5000}], currency="eur"), format="json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "lines": {"0": {"quantity": ["Out of range: the line total 20000 x 5000 = 100000000 exceeds 99999999."]}}
    }
    assert row_counts() == before


def test_an_invoice_total_out_of_range_is_refused(alice: Tenant, others: tuple[CatalogProduct, CatalogProduct]) -> None:
    _, eur = others
    line = {"product_id": eur.pk, "quantity": 2500}  # 50,000,000 each: two are one minor unit too many
    response = alice.client().post(INVOICES, invoice_body(alice, [line, line], currency="eur"), format="json")
    assert response.status_code == 400
    assert response.json() == {"lines": ["Out of range: the invoice total 100000000 exceeds 99999999 (minor units)."]}
    assert Invoice.objects.count() == 0


def test_every_problem_of_every_line_is_reported_at_once(alice: Tenant, catalog: Catalog) -> None:
    lines = [
        audit_line(catalog, option_ids=[catalog.mobile], custom_fields={}),
        {"product_id": catalog.setup.pk},
        {"product_id": 10**15},
    ]
    past = "2020-01-01T00:00:00Z"
    response = alice.client().post(INVOICES, invoice_body(alice, lines, due_at=past), format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["due_at"] == ["Must be in the future."]
    assert set(body["lines"]) == {"0", "2"}
    assert set(body["lines"]["0"]) == {"option_ids", "custom_fields"}
    assert body["lines"]["2"] == {"product_id": [f"Product {10**15} is not a product of this project."]}
    assert Invoice.objects.count() == 0


def test_an_inactive_product_is_refused(alice: Tenant, catalog: Catalog) -> None:
    CatalogProduct.objects.filter(pk=catalog.setup.pk).update(active=False)
    response = alice.client().post(INVOICES, invoice_body(alice, [{"product_id": catalog.setup.pk}]), format="json")
    assert response.status_code == 400
    assert response.json() == {"lines": {"0": {"product_id": [f"Product {catalog.setup.pk} ('setup') is not active."]}}}


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"lines": []}, {"lines": {"non_field_errors": ["Ensure this field has at least 1 elements."]}}),
        ({"currency": "USD"}, {"currency": ["A currency is a lower-case ISO 4217 code, such as usd."]}),
        ({"user_id": ""}, {"user_id": ["This field may not be blank."]}),
        ({"due_at": "tomorrow"}, {"due_at": ["An ISO 8601 instant with a time zone, such as 2026-01-01T00:00:00Z."]}),
    ],
)
def test_a_malformed_body_is_a_400_naming_the_field(
    alice: Tenant, catalog: Catalog, changes: dict[str, Any], errors: dict[str, Any]
) -> None:
    body = invoice_body(alice, [{"product_id": catalog.setup.pk}]) | changes
    response = alice.client().post(INVOICES, body, format="json")
    assert response.status_code == 400
    assert response.json() == errors
    assert Invoice.objects.count() == 0


@pytest.mark.parametrize(
    ("line", "errors"),
    [
        ({"quantity": 0}, {"quantity": ["Ensure this value is greater than or equal to 1."]}),
        ({"quantity": 10_001}, {"quantity": ["Ensure this value is less than or equal to 10000."]}),
        ({"quantity": "2"}, {"quantity": ["A valid integer is required."]}),
        ({"option_ids": ["1"]}, {"option_ids": {"0": ["A valid integer is required."]}}),
        ({"product_id": "website-audit"}, {"product_id": ["A valid integer is required."]}),
        ({"custom_fields": ["domain"]}, {"custom_fields": ['Expected a dictionary of items but got type "list".']}),
    ],
)
def test_a_malformed_line_is_a_400_naming_its_field(
    alice: Tenant, catalog: Catalog, line: dict[str, Any], errors: dict[str, Any]
) -> None:
    body = invoice_body(alice, [{"product_id": catalog.setup.pk} | line])
    response = alice.client().post(INVOICES, body, format="json")
    assert response.status_code == 400
    assert response.json() == {"lines": {"0": errors}}


def test_another_projects_id_in_the_body_is_403(alice: Tenant, bob: Tenant, catalog: Catalog) -> None:
    body = invoice_body(alice, [{"product_id": catalog.setup.pk}], project_id=bob.project.pk)
    response = alice.client().post(INVOICES, body, format="json")
    assert (response.status_code, response.json()) == (403, {"detail": "Project ID does not match"})
    assert Invoice.objects.count() == 0


def test_the_pricing_loads_the_configuration_with_one_query_set_however_many_lines_and_options(
    alice: Tenant, catalog: Catalog
) -> None:
    def queries(lines: list[dict[str, Any]]) -> int:
        with CaptureQueriesContext(connection) as captured:
            lines_price(project_id=alice.project.pk, currency="usd", lines=lines)
        return len(captured.captured_queries)

    one = queries([audit_line(catalog, custom_fields={"domain": "a.example"}, option_ids=[catalog.small])])
    many = queries([audit_line(catalog)] * 5 + [{"product_id": catalog.setup.pk}] * 3)
    # The products, their option groups, the groups' options, add-ons, custom fields, plans.
    assert one == many == 6


# --- Idempotency-Key ------------------------------------------------------------------------------------


def test_a_retry_with_the_same_idempotency_key_replays_the_first_invoice(alice: Tenant, catalog: Catalog) -> None:
    body = invoice_body(alice, [audit_line(catalog)])
    first = alice.client().post(INVOICES, body, format="json", HTTP_IDEMPOTENCY_KEY="bill-42")
    again = alice.client().post(INVOICES, body, format="json", HTTP_IDEMPOTENCY_KEY="bill-42")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Invoice.objects.count() == 1
    other = alice.client().post(
        INVOICES, invoice_body(alice, [audit_line(catalog, quantity=3)]), format="json", HTTP_IDEMPOTENCY_KEY="bill-42"
    )
    assert other.status_code == 409
    assert other.json() == {"detail": "This Idempotency-Key was already used with a different request."}
    assert Invoice.objects.count() == 1 and IdempotencyRecord.objects.count() == 1


def test_a_refused_create_is_replayed_as_refused(alice: Tenant, catalog: Catalog) -> None:
    body = invoice_body(alice, [audit_line(catalog, option_ids=[])])
    first = alice.client().post(INVOICES, body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    again = alice.client().post(INVOICES, body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert first.status_code == again.status_code == 400 and again.json() == first.json()
    assert Invoice.objects.count() == 0


# --- list and read --------------------------------------------------------------------------------------


def test_the_list_is_newest_first_paginated_and_filtered(alice: Tenant, bob: Tenant) -> None:
    mine = [
        InvoiceFactory.create(project=alice.project, customer__project=alice.project, user_id=user, status=status)
        for user, status in [("u1", "draft"), ("u2", "open"), ("u1", "paid"), ("u1", "open")]
    ]
    InvoiceFactory.create(customer__project=bob.project)
    api = alice.client()

    seen, cursor = [], None
    while True:
        page = api.get(INVOICES, {"limit": "3"} | ({"cursor": cursor} if cursor else {})).json()
        seen += [invoice["id"] for invoice in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [invoice.pk for invoice in reversed(mine)]

    def ids(**query: str) -> list[int]:
        response = api.get(INVOICES, query)
        assert response.status_code == 200, response.json()
        return [invoice["id"] for invoice in response.json()["results"]]

    assert ids(status="open") == [mine[3].pk, mine[1].pk]
    assert ids(user_id="u1") == [mine[3].pk, mine[2].pk, mine[0].pk]
    assert ids(user_id="u1", status="open") == [mine[3].pk]
    assert ids(status="void") == []


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ({"status": "unpaid"}, {"status": ['"unpaid" is not a valid choice.']}),
        ({"user_id": ""}, {"user_id": ["Required, at most 255 characters."]}),
        ({"user_id": "u" * 256}, {"user_id": ["Required, at most 255 characters."]}),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(alice: Tenant, query: dict[str, str], errors: dict[str, Any]) -> None:
    response = alice.client().get(INVOICES, query)
    assert (response.status_code, response.json()) == (400, errors)


def test_one_invoice_is_read_with_its_lines_and_another_projects_is_404(alice: Tenant, bob: Tenant) -> None:
    line = InvoiceLineFactory.create(invoice__customer__project=alice.project)
    invoice = line.invoice
    body = alice.client().get(f"{INVOICES}/{invoice.pk}").json()
    assert body["id"] == invoice.pk and [row["id"] for row in body["lines"]] == [line.pk]
    assert body["lines"][0]["breakdown"]["line_total"] == 3000
    assert bob.client().get(f"{INVOICES}/{invoice.pk}").status_code == 404
    assert alice.client().get(f"{INVOICES}/999999999").status_code == 404
    assert alice.client().get(f"{INVOICES}/{2**63}").status_code == 404  # beyond a bigint: still a 404


def test_scopes_are_enforced(alice: Tenant, catalog: Catalog) -> None:
    _, reader = app_create(project=alice.project, name="reader", scopes=["billing:read"])
    _, writer = app_create(project=alice.project, name="writer", scopes=["billing:write"])
    invoice = InvoiceFactory.create(customer__project=alice.project)
    read_only = Tenant(project=alice.project, app=alice.app, key=reader).client()
    write_only = Tenant(project=alice.project, app=alice.app, key=writer).client()

    refused = read_only.post(INVOICES, invoice_body(alice, [{"product_id": catalog.setup.pk}]), format="json")
    assert (refused.status_code, refused.json()) == (403, {"detail": "This API key lacks the scope(s): billing:write."})
    assert read_only.post(f"{INVOICES}/{invoice.pk}/void").status_code == 403
    assert read_only.get(INVOICES).status_code == 200
    assert write_only.get(f"{INVOICES}/{invoice.pk}").status_code == 403
    assert Invoice.objects.get(pk=invoice.pk).status == "draft"


# --- void and mark uncollectible ------------------------------------------------------------------------


def test_voiding_a_draft_answers_the_void_invoice_and_audits_it(alice: Tenant) -> None:
    invoice = InvoiceFactory.create(customer__project=alice.project)
    response = alice.client().post(f"{INVOICES}/{invoice.pk}/void")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "void" and body["voided_at"] is not None
    entry = AuditLog.objects.get(action="invoice.void")
    assert entry.actor.startswith("app:app (key ") and entry.target == f"invoice #{invoice.pk}"
    assert entry.project_id == alice.project.pk
    assert entry.before == {"status": "draft"} and (entry.after or {}).get("status") == "void"


def test_an_open_invoice_can_be_marked_uncollectible_and_then_voided(alice: Tenant) -> None:
    invoice = InvoiceFactory.create(customer__project=alice.project, status="open")
    marked = alice.client().post(f"{INVOICES}/{invoice.pk}/mark_uncollectible")
    assert marked.status_code == 200
    assert marked.json()["status"] == "uncollectible" and marked.json()["marked_uncollectible_at"] is not None
    voided = alice.client().post(f"{INVOICES}/{invoice.pk}/void")
    assert voided.status_code == 200 and voided.json()["status"] == "void"
    assert list(AuditLog.objects.order_by("pk").values_list("action", "before", "after__status")) == [
        ("invoice.mark_uncollectible", {"status": "open"}, "uncollectible"),
        ("invoice.void", {"status": "uncollectible"}, "void"),
    ]


@pytest.mark.parametrize(
    ("status", "action", "allowed_from"),
    [
        ("draft", "mark_uncollectible", "open"),
        ("paid", "mark_uncollectible", "open"),
        ("void", "mark_uncollectible", "open"),
        ("uncollectible", "mark_uncollectible", "open"),
        ("paid", "void", "draft, open, uncollectible"),
        ("void", "void", "draft, open, uncollectible"),
    ],
)
def test_a_transition_the_status_does_not_allow_is_409_and_changes_nothing(
    alice: Tenant, status: str, action: str, allowed_from: str
) -> None:
    invoice = InvoiceFactory.create(customer__project=alice.project, status=status)
    before = Invoice.objects.filter(pk=invoice.pk).values().get()
    response = alice.client().post(f"{INVOICES}/{invoice.pk}/{action}")
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Invoice {invoice.pk} is {status}: {action} is allowed only from {allowed_from}. Nothing changed."
    }
    assert Invoice.objects.filter(pk=invoice.pk).values().get() == before
    assert AuditLog.objects.count() == 0


def test_another_projects_invoice_cannot_be_voided(alice: Tenant, bob: Tenant) -> None:
    invoice = InvoiceFactory.create(customer__project=alice.project)
    for action in ("void", "mark_uncollectible"):
        assert bob.client().post(f"{INVOICES}/{invoice.pk}/{action}").status_code == 404
    assert Invoice.objects.get(pk=invoice.pk).status == "draft"
    assert AuditLog.objects.count() == 0
