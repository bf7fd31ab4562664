"""An invoice's status machine: which action leads where, and the conditional UPDATE that takes it.

    draft ──finalize──> open ──pay──> paid
      │                  │  └──mark_uncollectible──> uncollectible ──pay──> paid
      └──void──> void <──┴──────────────void──────────────┘

Every other move is refused (the API answers 409 and nothing changes). A move is one
`UPDATE ... WHERE id = ? AND status = <the status just read>`: of two concurrent moves from one
status, PostgreSQL lets the second re-check its WHERE after the first commits, finds no row, and
that move loses. The loser re-reads and either moves from the new status (if the action is allowed
from there too) or is refused naming it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from apps.checkout.models import Invoice
from apps.common.exceptions import Conflict, NotFound

Status = Invoice.Status


@dataclass(frozen=True)
class Transition:
    action: str
    target: str
    sources: frozenset[str]
    stamp: str | None  # the timestamp field the move sets, if any


FINALIZE = Transition("finalize", Status.OPEN, frozenset({Status.DRAFT}), None)
PAY = Transition("pay", Status.PAID, frozenset({Status.OPEN, Status.UNCOLLECTIBLE}), "paid_at")
VOID = Transition("void", Status.VOID, frozenset({Status.DRAFT, Status.OPEN, Status.UNCOLLECTIBLE}), "voided_at")
MARK_UNCOLLECTIBLE = Transition(
    "mark_uncollectible", Status.UNCOLLECTIBLE, frozenset({Status.OPEN}), "marked_uncollectible_at"
)
TRANSITIONS: dict[str, Transition] = {t.action: t for t in (FINALIZE, PAY, VOID, MARK_UNCOLLECTIBLE)}

# The longest chain of moves is draft → open → uncollectible → paid: a claim that keeps losing to
# concurrent moves has seen the last status a row can take after this many tries.
_ATTEMPTS = 4


@dataclass(frozen=True)
class Claim:
    """The outcome of a move: `won`, and the status the invoice had (left, when won; else holds)."""

    won: bool
    status: str


def allowed(status: str, transition: Transition) -> bool:
    return status in transition.sources


def refusal(invoice_id: int, status: str, transition: Transition) -> Conflict:
    """The 409 of a move the invoice's status does not allow, naming both."""
    sources = ", ".join(sorted(transition.sources))
    return Conflict(
        f"Invoice {invoice_id} is {status}: {transition.action} is allowed only from {sources}. Nothing changed."
    )


def transition_claim(
    *, invoice_id: int, transition: Transition, at: dt.datetime, fields: dict[str, Any] | None = None
) -> Claim:
    """Moves the invoice along `transition` if its status allows it, setting the transition's stamp
    (to `at`), `updated_at` and `fields` in the same UPDATE. Raises NotFound for a missing invoice."""
    # update() skips auto_now: updated_at is set here, to the time of the write (`at` may be earlier,
    # such as the moment Stripe says a payment happened).
    changes: dict[str, Any] = {"status": transition.target, "updated_at": timezone.now(), **(fields or {})}
    if transition.stamp is not None:
        changes[transition.stamp] = at
    current = ""
    for _ in range(_ATTEMPTS):
        found = Invoice.objects.filter(pk=invoice_id).values_list("status", flat=True).first()
        if found is None:
            raise NotFound(f"Invoice {invoice_id} not found.")
        current = found
        if not allowed(current, transition):
            return Claim(won=False, status=current)
        if Invoice.objects.filter(pk=invoice_id, status=current).update(**changes):
            return Claim(won=True, status=current)
    return Claim(won=False, status=current)
