"""Reads of invoices' hosted sessions: the sessions API, and the webhooks' question "is it one of ours"."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apps.checkout.models import CheckoutSession, Invoice


def hosted_session_queryset(
    *, project_id: int, status: str | None = None, invoice_id: int | None = None
) -> QuerySet[CheckoutSession]:
    """The project's invoice sessions (price checkouts of POST /checkout/session are not listed)."""
    sessions = CheckoutSession.objects.filter(project_id=project_id, invoice__isnull=False)
    if status is not None:
        sessions = sessions.filter(status=status)
    if invoice_id is not None:
        sessions = sessions.filter(invoice_id=invoice_id)
    return sessions


def hosted_session_get(*, project_id: int, session_id: int) -> CheckoutSession | None:
    """One invoice session of the project; None for an unknown id or another project's session."""
    return hosted_session_queryset(project_id=project_id).filter(pk=session_id).first()


def invoice_in_project(*, project_id: int, invoice_id: int) -> bool:
    return Invoice.objects.filter(project_id=project_id, pk=invoice_id).exists()


def is_invoice_session(*, session: dict[str, Any]) -> bool:
    """Whether a Stripe checkout session pays one of our invoices: our metadata says so (Stripe
    copies it onto a session opened from a recovery URL), or our row of it, or of the session it was
    recovered from, has an invoice. A plain read, for the webhook's fetch step."""
    metadata = session.get("metadata")
    if isinstance(metadata, dict) and metadata.get("invoice_id"):
        return True
    ids = [value for value in (session.get("id"), session.get("recovered_from")) if isinstance(value, str) and value]
    return bool(ids) and CheckoutSession.objects.filter(stripe_session_id__in=ids, invoice__isnull=False).exists()
