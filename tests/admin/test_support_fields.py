"""What support looks for: a processor event's user, a checkout session's payment failure."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import NOW, CheckoutSessionFactory, ProcessorEventFactory

pytestmark = pytest.mark.django_db


def test_processor_events_show_and_find_their_user(staff: Client) -> None:
    mine = ProcessorEventFactory.create(user_id="user_42")
    ProcessorEventFactory.create(user_id="user_421")
    ProcessorEventFactory.create(user_id="")
    found = staff.get("/admin/webhooks/processorevent/", {"q": "user_42"})
    assert [row.pk for row in found.context["cl"].result_list] == [mine.pk]  # exact, not a prefix
    assert "user_42" in found.content.decode()
    with_user = staff.get("/admin/webhooks/processorevent/", {"user_id__isempty": "0"})
    assert with_user.context["cl"].result_count == 2
    assert "user_42" in staff.get(f"/admin/webhooks/processorevent/{mine.pk}/change/").content.decode()


def test_a_checkout_sessions_payment_failure_is_shown_read_only(staff: Client) -> None:
    failed = CheckoutSessionFactory.create(
        last_payment_error_code="card_declined",
        last_payment_error_message="Your card was declined.",
        payment_failed_at=NOW,
        stripe_payment_intent_id="pi_declined",
    )
    CheckoutSessionFactory.create()
    page = staff.get(f"/admin/checkout/checkoutsession/{failed.pk}/change/")
    html = page.content.decode()
    assert "card_declined" in html and "Your card was declined." in html
    assert page.context["adminform"].form.fields == {}  # nothing to edit
    listed = staff.get("/admin/checkout/checkoutsession/", {"payment_failed_at__isempty": "0"})
    assert [row.pk for row in listed.context["cl"].result_list] == [failed.pk]
    assert staff.get("/admin/checkout/checkoutsession/", {"q": "pi_declined"}).context["cl"].result_count == 1
