"""Reads of invoices, always within one project (another project's invoice does not exist here)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.checkout.models import Invoice, InvoiceLine


def _with_lines(queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
    # One query for the lines of a whole page, in their order.
    return queryset.prefetch_related(Prefetch("lines", queryset=InvoiceLine.objects.order_by("position")))


def invoice_list(*, project_id: int, status: str | None = None, user_id: str | None = None) -> QuerySet[Invoice]:
    invoices = Invoice.objects.filter(project_id=project_id)
    if status is not None:
        invoices = invoices.filter(status=status)
    if user_id is not None:
        invoices = invoices.filter(user_id=user_id)
    return _with_lines(invoices)


def invoice_get(*, project_id: int, invoice_id: int) -> Invoice | None:
    return _with_lines(Invoice.objects.filter(project_id=project_id, pk=invoice_id)).first()
