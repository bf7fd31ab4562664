"""Recovery against the Stripe sandbox: the real hosted-session services, the real gateway.

A session is created through the API, expired at Stripe, recorded expired as the webhook would
(hosted_session_expire), abandoned by the run's own sweep, then given a way back: Stripe's recovery
URL (which opens a new session at Stripe) or, without one, a session regenerated at Stripe. No
Stripe call is made inside a transaction of ours.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import stripe
from django.core import mail
from django.utils import timezone

from apps.checkout.hosted.services import hosted_session_expire
from apps.checkout.models import CheckoutSession
from apps.recovery.models import RecoveryAttempt, RecoveryRun
from apps.recovery.worker import recovery_run_execute
from stripe_sandbox.testing import SandboxProcess
from tests.conftest import Tenant
from tests.factories import invoice_with_lines
from tests.sandbox.test_hosted_session_expiry import get_no_redirect
from tests.transaction_guard import StripeRequests, stripe_requests

__all__ = ["stripe_requests"]  # the fixture, imported for this module's tests

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("recovery_settings")]


def _expired_at_stripe(tenant: Tenant, client: stripe.StripeClient) -> tuple[CheckoutSession, dict[str, Any]]:
    """An invoice session opened through the API, then expired at Stripe: (our row, Stripe's session)."""
    lines = [{"name": "Annual report", "unit_amount": 1305, "quantity": 2}]
    invoice = invoice_with_lines(project=tenant.project, lines=lines)
    slug = tenant.project.slug
    response = tenant.client().post(
        f"/api/v1/billing/invoices/{invoice.pk}/checkout",
        {"success_url": f"https://{slug}.example/paid", "cancel_url": f"https://{slug}.example/invoice"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    row = CheckoutSession.objects.get(pk=response.json()["id"])
    assert row.stripe_session_id is not None
    expired = client.v1.checkout.sessions.expire(row.stripe_session_id)
    return row, expired.to_dict()


def _record_expired(tenant: Tenant, stripe_session: dict[str, Any]) -> None:
    # What checkout.session.expired does, two hours ago: the run's sweep then abandons it.
    hosted_session_expire(
        project=tenant.project, session=stripe_session, expired_at=timezone.now() - timedelta(hours=2)
    )


def test_stripes_recovery_url_is_emailed_and_opens_a_new_session_at_stripe(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient, stripe_requests: StripeRequests
) -> None:
    row, stripe_session = _expired_at_stripe(alice, stripe_client)
    recovery_url = stripe_session["after_expiration"]["recovery"]["url"]
    assert recovery_url
    _record_expired(alice, stripe_session)

    run = recovery_run_execute(trigger=RecoveryRun.Trigger.MANUAL)

    assert run.counts["abandoned"] == 1 and run.counts["recovered"] == 1 and run.counts["notified"] == 1
    attempt = RecoveryAttempt.objects.get(session=row)
    assert (attempt.method, attempt.url) == ("stripe_recovery_url", recovery_url)
    [message] = mail.outbox
    assert recovery_url in message.body
    # The link works: Stripe opens a new session copying the old one and sends the browser there.
    status, location, _ = get_no_redirect(recovery_url)
    assert status == 302
    recovered = [s for s in stripe_client.v1.checkout.sessions.list(params={"limit": 10}).data if s.recovered_from]
    assert [(s.recovered_from, s.url) for s in recovered] == [(row.stripe_session_id, location)]
    stripe_requests.assert_none_inside_our_transactions()


def test_without_a_recovery_url_a_session_is_regenerated_at_stripe_and_its_link_emailed(
    alice: Tenant, stripe_sandbox: SandboxProcess, stripe_client: stripe.StripeClient, stripe_requests: StripeRequests
) -> None:
    row, stripe_session = _expired_at_stripe(alice, stripe_client)
    stripe_session.pop("after_expiration")  # as for a session Stripe gave no recovery URL
    _record_expired(alice, stripe_session)
    held_before = len(stripe_client.v1.checkout.sessions.list(params={"limit": 100}).data)

    run = recovery_run_execute(trigger=RecoveryRun.Trigger.MANUAL)

    assert run.counts["recovered"] == 1 and run.counts["failed"] == 0, run.errors
    attempt = RecoveryAttempt.objects.get(session=row)
    new = attempt.new_session
    assert attempt.method == "regenerated" and new is not None
    row.refresh_from_db()
    new.refresh_from_db()
    assert (row.status, new.status, new.regenerated_from_id, new.invoice_id) == (
        "regenerated",
        "open",
        row.pk,
        row.invoice_id,
    )
    assert new.recovery_attempts == 1
    held = stripe_client.v1.checkout.sessions.retrieve(str(new.stripe_session_id))
    assert held.status == "open" and held.metadata is not None
    assert held.metadata["invoice_id"] == str(row.invoice_id) and held.metadata["checkout_session"] == str(new.pk)
    assert len(stripe_client.v1.checkout.sessions.list(params={"limit": 100}).data) == held_before + 1
    [message] = mail.outbox
    assert attempt.url == new.url == held.url and new.url in message.body
    assert get_no_redirect(new.url)[0] == 200  # the hosted page opens
    stripe_requests.assert_none_inside_our_transactions()
