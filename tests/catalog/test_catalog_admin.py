"""The catalog admin pages render, with the configuration inlines, and refuse invalid rows."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.catalog.models import Option
from tests.catalog.test_product_configuration import configured
from tests.conftest import Tenant
from tests.factories import PriceFeatureFactory, SuperuserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client) -> Client:
    client.force_login(SuperuserFactory.create(username="support"))
    return client


def test_the_product_list_filters_by_project_and_searches(staff: Client, alice: Tenant, bob: Tenant) -> None:
    configured(alice)
    configured(bob)
    page = staff.get(f"/admin/catalog/catalogproduct/?project__id__exact={alice.project.pk}")
    assert page.status_code == 200
    assert [p.project_id for p in page.context["cl"].result_list] == [alice.project.pk]
    assert staff.get("/admin/catalog/catalogproduct/?q=audit").context["cl"].result_count == 2
    assert staff.get("/admin/catalog/catalogproduct/?active__exact=0").context["cl"].result_count == 0


def test_the_product_page_shows_every_configuration_inline(staff: Client, alice: Tenant) -> None:
    product = configured(alice)
    html = staff.get(f"/admin/catalog/catalogproduct/{product.pk}/change/").content.decode()
    for prefix in (
        "option_groups-TOTAL_FORMS",
        "add_ons-TOTAL_FORMS",
        "custom_fields-TOTAL_FORMS",
        "subscription_plans-TOTAL_FORMS",
    ):
        assert prefix in html
    assert "Gift wrap" not in html  # options live on the group's page, linked from here
    assert "2 option(s)" in html and "1 option(s)" in html
    assert 'value="Support"' in html and 'value="seats"' in html and 'value="Annual"' in html


def test_options_are_edited_on_the_group_page(staff: Client, alice: Tenant) -> None:
    group = configured(alice).option_groups.get(name="Size")
    html = staff.get(f"/admin/catalog/optiongroup/{group.pk}/change/").content.decode()
    assert "options-TOTAL_FORMS" in html and "Small" in html and "Large" in html


def test_the_group_page_refuses_an_option_delta_out_of_range(staff: Client, alice: Tenant) -> None:
    group = configured(alice).option_groups.get(name="Extras")
    option = group.options.get()
    response = staff.post(
        f"/admin/catalog/optiongroup/{group.pk}/change/",
        {
            "product": group.product_id,
            "name": "Extras",
            "selection": "multiple",
            "position": 1,
            "options-TOTAL_FORMS": "1",
            "options-INITIAL_FORMS": "1",
            "options-0-id": option.pk,
            "options-0-group": group.pk,
            "options-0-position": 0,
            "options-0-name": "Gift wrap",
            "options-0-price_delta": 100_001,
        },
    )
    assert response.status_code == 200  # the form again, with its error
    assert "Ensure this value is less than or equal to 100000." in response.content.decode()
    assert Option.objects.get(pk=option.pk).price_delta == 300


def test_the_price_feature_list_shows_and_filters(staff: Client, alice: Tenant, bob: Tenant) -> None:
    PriceFeatureFactory.create(
        project=alice.project, stripe_price_id="price_a", feature_code="pro", purchase_duration_days=30
    )
    PriceFeatureFactory.create(project=bob.project, stripe_price_id="price_b", feature_code="basic")
    page = staff.get("/admin/catalog/pricefeature/?feature_code=pro")
    assert page.status_code == 200
    assert page.context["cl"].result_count == 1
    assert "price_a" in page.content.decode() and "price_b" not in page.content.decode()
    assert (
        staff.get(f"/admin/catalog/pricefeature/?project__id__exact={bob.project.pk}").context["cl"].result_count == 1
    )
