"""OpenAPI examples of the reconciliation endpoints (apps/reconciliation/api.py), in the shapes a run
writes (apps/reconciliation/services.py: counts per object type and `total`, the summary, the cursors).

One project (id 1, slug alpha) whose full run found four differences: a subscription canceled in
Stripe's dashboard (corrected: Stripe is the truth for payment state), a charge refunded there
(corrected), a customer whose metadata lost its user and a subscription that names no user of ours
(both left open for finance); and closed one older finding that is no longer there.
"""

from __future__ import annotations

from typing import Any


def _counts(checked: int, drift: int = 0, corrected: int = 0) -> dict[str, int]:
    return {
        "checked": checked,
        "drift_found": drift,
        "corrected": corrected,
        "left_open": drift - corrected,
        "errors": 0,
    }


def _cursor(pages: int, objects: int, completed_at: str | None = "2026-11-23T03:02:40.118204+00:00") -> dict[str, Any]:
    return {
        "starting_after": "",
        "pages": pages,
        "objects_seen": objects,
        "completed_at": completed_at,
        "window_start": None,
    }


RUN: dict[str, Any] = {
    "id": 12,
    "url": "/api/v1/billing/reconciliation/runs/12",
    "project_id": 1,
    "trigger": "api",
    "mode": "full",
    "days_back": None,
    "dry_run": False,
    "status": "succeeded",
    "started_at": "2026-11-23T03:00:00.204511Z",
    "finished_at": "2026-11-23T03:02:41.408760Z",
    "counts": {
        "customer": _counts(980, 1),
        "subscription": _counts(1200, 2, 1),
        "payment_intent": _counts(310),
        "charge": _counts(305, 1, 1),
        "total": _counts(2795, 4, 2),
    },
    "summary": {
        "run_id": 12,
        "project": "alpha",
        "mode": "full",
        "days_back": None,
        "dry_run": False,
        "trigger": "api",
        "status": "succeeded",
        "subscriptions_checked": 1200,
        "purchases_checked": 615,
        "drift_detected": 4,
        "corrected": 2,
        "left_open": 2,
        "errors": 0,
        "closed": 1,
        "by_kind": {
            "charge_amount_refunded": 1,
            "customer_mapping": 1,
            "subscription_missing_locally_unrouted": 1,
            "subscription_status": 1,
        },
        "stripe_requests": 30,
        "db_writes": 7,
        "duration_ms": 161204,
        "resumed_from": None,
        "took_over": None,
        "error": "",
    },
    "cursors": {
        "customer": _cursor(10, 980),
        "subscription": _cursor(12, 1200),
        "payment_intent": _cursor(4, 310),
        "charge": _cursor(4, 305),
    },
    "stripe_requests": 30,
    "db_writes": 7,
    "duration_ms": 161204,
    "error": "",
    "requested_by": "app:ops-console (key a1b2c3d4)",
    "resumed_from": None,
}

ACCEPTED: dict[str, Any] = {
    **RUN,
    "status": "running",
    "finished_at": None,
    "counts": {},
    "summary": {},
    "cursors": {},
    "stripe_requests": 0,
    "db_writes": 0,
    "duration_ms": None,
}

INCREMENTAL_RUNNING: dict[str, Any] = {
    **ACCEPTED,
    "id": 13,
    "url": "/api/v1/billing/reconciliation/runs/13",
    "trigger": "scheduled",
    "mode": "incremental",
    "days_back": 7,
    "started_at": "2026-11-24T03:00:00.118330Z",
    "requested_by": "",
    "cursors": {
        "event": {
            "starting_after": "evt_1QBcd3B7WZ01zgkW",
            "pages": 3,
            "objects_seen": 300,
            "completed_at": None,
            "window_start": "2026-11-17T03:00:00.118330+00:00",
        }
    },
    "stripe_requests": 3,
}

FAILED: dict[str, Any] = {
    **RUN,
    "id": 11,
    "url": "/api/v1/billing/reconciliation/runs/11",
    "status": "failed",
    "trigger": "scheduled",
    "started_at": "2026-11-22T03:00:00.093112Z",
    "finished_at": "2026-11-22T03:41:07.552871Z",
    "requested_by": "",
    "counts": {"customer": _counts(980), "subscription": _counts(500), "total": _counts(1480)},
    "summary": {},
    "cursors": {
        "customer": _cursor(10, 980, "2026-11-22T03:00:41.330127+00:00"),
        "subscription": _cursor(5, 500, None) | {"starting_after": "sub_1QAbc2B7WZ01zgkW"},
    },
    "stripe_requests": 15,
    "db_writes": 0,
    "duration_ms": None,
    "error": "Abandoned: its process stopped (the project's reconciliation lock was free); a new run takes over "
    "its cursors.",
}

DISCREPANCY: dict[str, Any] = {
    "id": 88,
    "url": "/api/v1/billing/reconciliation/discrepancies/88",
    "project_id": 1,
    "run_id": 12,
    "kind": "customer_mapping",
    "object_type": "customer",
    "stripe_id": "cus_QAbc2B7WZ01zgkW",
    "user_id": "user_42",
    "local_value": {"user_id": "user_42"},
    "stripe_value": {"user_id": None},
    "detected_at": "2026-11-23T03:01:12.651904Z",
    "status": "open",
    "resolution_action": "",
    "resolved_by": "",
    "resolved_at": None,
    "note": "",
}

STATUS_DRIFT: dict[str, Any] = {
    **DISCREPANCY,
    "id": 87,
    "url": "/api/v1/billing/reconciliation/discrepancies/87",
    "kind": "subscription_status",
    "object_type": "subscription",
    "stripe_id": "sub_1QAbc2B7WZ01zgkW",
    "local_value": {"status": "active"},
    "stripe_value": {"status": "canceled"},
    "detected_at": "2026-11-23T03:01:10.220154Z",
    "status": "auto_resolved",
    "resolution_action": "auto",
    "resolved_by": "reconciliation run #12",
    "resolved_at": "2026-11-23T03:01:10.240981Z",
    "note": "subscription sub_1QAbc2B7WZ01zgkW status: active -> canceled",
}

RESOLVED: dict[str, Any] = {
    **DISCREPANCY,
    "status": "resolved",
    "resolution_action": "keep_local",
    "resolved_by": "app:ops-console (key a1b2c3d4)",
    "resolved_at": "2026-11-23T09:30:00.512774Z",
    "note": "Support moved this customer by hand; our link is right (ticket 4412).",
}
