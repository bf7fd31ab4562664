"""Writes for notification endpoints (create, update, delete, rotate the secret) and replays.

Every change is audited (apps.common.audit) in its own transaction, with the state before and after
and never a secret. The API, the admin and any command go through these functions, so they validate
alike: the admin's forms call `endpoint_validate` to show the API's refusals as form errors.

Replays reset deliveries to `pending` now and fan a notification out to endpoints that did not
exist (or did not want it) when it was written; the fulfillment worker is woken after commit and
sends them with the endpoint's current secret. Delivery is at least once: receivers dedupe by `id`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from apps.common.audit import audit_record
from apps.common.exceptions import ServiceError
from apps.entitlements.notifications import selectors
from apps.entitlements.notifications.models import Delivery, NotificationEndpoint, secret_new
from apps.entitlements.notifications.outbox import NOTIFICATION_TYPES
from apps.projects.models import App

log = structlog.get_logger("billing.notifications")

ENDPOINTS_PER_APP_MAX = 10
URL_MAX = 2000
# A replay touches at most this many notifications; a wider one is refused, not silently cut.
REPLAY_NOTIFICATIONS_MAX = 10_000
REPLAY_WINDOW_MAX = dt.timedelta(days=31)
# Until billing_service/settings.py defines them (the delivery worker's settings).
_SECRET_OVERLAP_SECONDS_DEFAULT = 86400
_AUDITED_IDS_MAX = 100


class TooManyEndpoints(ServiceError):
    default_detail = (
        f"An app may have at most {ENDPOINTS_PER_APP_MAX} notification endpoints; delete one before adding another."
    )


class ReplayTooLarge(ServiceError):
    default_detail = f"More than {REPLAY_NOTIFICATIONS_MAX} notifications match; narrow the window or the types."


# --- settings ------------------------------------------------------------------------------------


def secret_overlap() -> dt.timedelta:
    """How long a rotated-out secret keeps signing, so that receivers can switch without losing any."""
    seconds = getattr(settings, "NOTIFICATION_SECRET_OVERLAP_SECONDS", _SECRET_OVERLAP_SECONDS_DEFAULT)
    return dt.timedelta(seconds=int(seconds))


def http_allowed() -> bool:
    """Plain http endpoints: development and tests only (a notification says who may use what)."""
    default = bool(settings.DEBUG or getattr(settings, "IS_TEST", False))
    return bool(getattr(settings, "NOTIFICATION_ALLOW_HTTP", default))


# --- validation ----------------------------------------------------------------------------------


def _url_errors(url: str) -> list[str]:
    schemes = ["http", "https"] if http_allowed() else ["https"]
    if len(url) > URL_MAX:
        return [f"At most {URL_MAX} characters."]
    try:
        URLValidator(schemes=schemes)(url)
    except ValidationError:
        if url.lower().startswith("http://") and not http_allowed():
            return ["Must be an https URL: plain http is allowed only in development and tests."]
        return [f"Must be an absolute {' or '.join(schemes)} URL."]
    if "@" in url.split("//", 1)[1].split("/", 1)[0]:
        # Credentials in the URL would be stored and shown in the admin: sign the body instead.
        return ["Must not carry credentials (user:password@); verify the signature instead."]
    return []


def _event_types_clean(event_types: Iterable[str]) -> tuple[list[str], list[str]]:
    """The types without repeats, in the given order, and the errors (unknown types)."""
    cleaned = list(dict.fromkeys(event_types))
    unknown = [t for t in cleaned if t not in NOTIFICATION_TYPES]
    if unknown:
        known = ", ".join(NOTIFICATION_TYPES)
        return cleaned, [f"Unknown notification type(s): {', '.join(unknown)}. Known: {known}."]
    return cleaned, []


def endpoint_validate(*, url: str | None, event_types: Iterable[str] | None) -> list[str] | None:
    """Raises ValidationError naming each bad field; answers the event types without repeats."""
    errors: dict[str, list[str]] = {}
    cleaned: list[str] | None = None
    if url is not None and (url_errors := _url_errors(url)):
        errors["url"] = url_errors
    if event_types is not None:
        cleaned, type_errors = _event_types_clean(event_types)
        if type_errors:
            errors["event_types"] = type_errors
    if errors:
        raise ValidationError(errors)
    return cleaned


def _state(endpoint: NotificationEndpoint) -> dict[str, Any]:
    """What the audit log keeps of an endpoint: never its secrets."""
    return {"url": endpoint.url, "event_types": list(endpoint.event_types), "enabled": endpoint.enabled}


def _target(endpoint: NotificationEndpoint) -> str:
    return f"notification endpoint #{endpoint.pk}"


# --- endpoints -----------------------------------------------------------------------------------


def endpoint_create(
    *, app: App, url: str, event_types: Sequence[str] = (), enabled: bool = True, actor: str
) -> NotificationEndpoint:
    """A new endpoint with a new secret (the caller shows `endpoint.secret` once); TooManyEndpoints past the cap."""
    types = endpoint_validate(url=url, event_types=event_types) or []
    with transaction.atomic():
        # The app's row as a lock: two creates at once cannot both pass the cap.
        App.objects.select_for_update().filter(pk=app.pk).first()
        if selectors.endpoint_count(app_id=app.pk) >= ENDPOINTS_PER_APP_MAX:
            raise TooManyEndpoints()
        endpoint = NotificationEndpoint.objects.create(app=app, url=url, event_types=types, enabled=enabled)
        audit_record(
            actor=actor,
            action="notification_endpoint.create",
            target=_target(endpoint),
            project_id=app.project_id,
            after={"app_id": app.pk, **_state(endpoint)},
        )
    log.info("notification_endpoint_created", endpoint=endpoint.pk, app=app.pk, actor=actor)
    return endpoint


def endpoint_update(
    *,
    endpoint: NotificationEndpoint,
    actor: str,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    enabled: bool | None = None,
) -> NotificationEndpoint:
    """Changes what is given. Enabling clears the disabled state and the failure run, and wakes the worker
    for the deliveries that waited; disabling records who did it."""
    types = endpoint_validate(url=url, event_types=event_types)
    now = timezone.now()
    with transaction.atomic():
        locked = NotificationEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = _state(locked)
        was_off = not locked.enabled or locked.disabled_at is not None
        if url is not None:
            locked.url = url
        if types is not None:
            locked.event_types = types
        if enabled is True and was_off:
            locked.enabled = True
            locked.disabled_at = None
            locked.disabled_reason = ""
            locked.failing_since = None
        elif enabled is False and locked.enabled:
            locked.enabled = False
            locked.disabled_at = now
            locked.disabled_reason = f"Disabled by {actor}."[:300]
        locked.save()
        after = _state(locked)
        if after != before or (enabled is True and was_off):
            audit_record(
                actor=actor,
                action="notification_endpoint.update",
                target=_target(locked),
                project_id=locked.app.project_id,
                before=before,
                after=after,
            )
        if enabled is True and was_off:
            transaction.on_commit(_wake_worker)
    log.info("notification_endpoint_updated", endpoint=locked.pk, actor=actor, enabled=locked.enabled)
    return locked


def endpoint_delete(*, endpoint: NotificationEndpoint, actor: str) -> None:
    """Deletes the endpoint and its deliveries (the notifications stay, for other endpoints and replays)."""
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="notification_endpoint.delete",
            target=_target(endpoint),
            project_id=endpoint.app.project_id,
            before={"app_id": endpoint.app_id, **_state(endpoint)},
        )
        endpoint_id = endpoint.pk
        endpoint.delete()
    log.info("notification_endpoint_deleted", endpoint=endpoint_id, actor=actor)


def endpoint_secret_rotate(*, endpoint: NotificationEndpoint, actor: str) -> NotificationEndpoint:
    """A new secret (the caller shows it once); the current one keeps signing for the overlap window.

    Deliveries carry one `v1` per valid secret, so a receiver may switch to the new secret at any
    time within the window. A second rotation within the window retires the oldest secret at once.
    """
    overlap = secret_overlap()
    now = timezone.now()
    with transaction.atomic():
        locked = NotificationEndpoint.objects.select_for_update().select_related("app").get(pk=endpoint.pk)
        if overlap > dt.timedelta(0):
            locked.previous_secret = locked.secret
            locked.previous_secret_expires_at = now + overlap
        else:
            locked.previous_secret = ""
            locked.previous_secret_expires_at = None
        locked.secret = secret_new()
        locked.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
        expires = locked.previous_secret_expires_at
        audit_record(
            actor=actor,
            action="notification_endpoint.rotate_secret",
            target=_target(locked),
            project_id=locked.app.project_id,
            after={"previous_secret_expires_at": expires.isoformat() if expires else None},
        )
    log.info("notification_endpoint_secret_rotated", endpoint=locked.pk, actor=actor)
    return locked


# --- replays -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayOutcome:
    notifications: int  # selected
    deliveries: int  # reset to pending, plus created
    created: int  # of which new (endpoints that had no delivery of the notification)
    dry_run: bool


def notifications_replay(
    *,
    project_id: int | None,
    actor: str,
    notification_ids: Sequence[str] | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    types: Sequence[str] | None = None,
    endpoint_id: int | None = None,
    dry_run: bool = False,
    reason: str = "",
) -> ReplayOutcome:
    """Sends the selected notifications again: their deliveries are reset to pending now, and the
    project's currently subscribed endpoints that have none get one. `project_id` None: any project
    (the admin); `endpoint_id`: only that endpoint. A dry run counts and changes nothing."""
    selection = selectors.notifications_select(
        project_id=project_id, notification_ids=notification_ids, since=since, until=until, types=types
    )
    now = timezone.now()
    with transaction.atomic():
        rows = list(selection.values_list("pk", "project_id", "type")[: REPLAY_NOTIFICATIONS_MAX + 1])
        if len(rows) > REPLAY_NOTIFICATIONS_MAX:
            raise ReplayTooLarge()
        existing = Delivery.objects.filter(notification_id__in=[pk for pk, _, _ in rows])
        if endpoint_id is not None:
            existing = existing.filter(endpoint_id=endpoint_id)
        pairs = set(existing.values_list("notification_id", "endpoint_id"))
        missing = _missing_deliveries(rows, pairs, endpoint_id=endpoint_id, now=now)
        if not dry_run:
            # created_at starts the retry window again: a replay of an old delivery gets its full window.
            existing.update(status=Delivery.Status.PENDING, next_attempt_at=now, failed_at=None, created_at=now)
            Delivery.objects.bulk_create(missing, ignore_conflicts=True)
        outcome = ReplayOutcome(
            notifications=len(rows), deliveries=len(pairs) + len(missing), created=len(missing), dry_run=dry_run
        )
        if not dry_run:
            _audit_replay(
                actor=actor,
                reason=reason,
                project_ids={project for _, project, _ in rows} or ({project_id} if project_id else set()),
                notification_ids=[pk for pk, _, _ in rows],
                outcome=outcome,
                params={
                    "notification_ids": list(notification_ids or [])[:_AUDITED_IDS_MAX],
                    "since": since.isoformat() if since else None,
                    "until": until.isoformat() if until else None,
                    "types": list(types or []),
                    "endpoint_id": endpoint_id,
                },
            )
            if outcome.deliveries:
                transaction.on_commit(_wake_worker)
    log.info(
        "notifications_replayed",
        project_id=project_id,
        actor=actor,
        notifications=outcome.notifications,
        deliveries=outcome.deliveries,
        created=outcome.created,
        dry_run=dry_run,
    )
    return outcome


def _missing_deliveries(
    rows: list[tuple[str, int, str]], pairs: set[tuple[str, int]], *, endpoint_id: int | None, now: dt.datetime
) -> list[Delivery]:
    """A delivery for each (notification, subscribed endpoint of its project) that has none yet."""
    endpoints = NotificationEndpoint.objects.filter(
        app__project_id__in={project for _, project, _ in rows}, app__active=True, enabled=True
    ).select_related("app")
    if endpoint_id is not None:
        endpoints = endpoints.filter(pk=endpoint_id)
    by_project: dict[int, list[NotificationEndpoint]] = defaultdict(list)
    for endpoint in endpoints:
        by_project[endpoint.app.project_id].append(endpoint)
    return [
        Delivery(notification_id=pk, endpoint=endpoint, next_attempt_at=now, created_at=now)
        for pk, project, notification_type in rows
        for endpoint in by_project[project]
        if endpoint.wants(notification_type) and (pk, endpoint.pk) not in pairs
    ]


def _audit_replay(
    *,
    actor: str,
    reason: str,
    project_ids: set[int],
    notification_ids: list[str],
    outcome: ReplayOutcome,
    params: dict[str, Any],
) -> None:
    target = f"notification {notification_ids[0]}" if len(notification_ids) == 1 else "notifications replay"
    audit_record(
        actor=actor,
        action="notification.replay",
        target=target,
        reason=reason,
        # One project's replay (always through the API) names it; an admin selection across projects cannot.
        project_id=next(iter(project_ids)) if len(project_ids) == 1 else None,
        after={
            "notifications": outcome.notifications,
            "deliveries": outcome.deliveries,
            "created": outcome.created,
            "params": params,
        },
    )


def deliveries_replay(*, delivery_ids: Sequence[int], actor: str, reason: str = "") -> int:
    """Resets the given deliveries to pending now (the admin's action on the deliveries list)."""
    now = timezone.now()
    with transaction.atomic():
        rows = Delivery.objects.filter(pk__in=list(delivery_ids))
        projects = set(rows.values_list("notification__project_id", flat=True))
        # created_at starts the retry window again (see notifications_replay).
        count = rows.update(status=Delivery.Status.PENDING, next_attempt_at=now, failed_at=None, created_at=now)
        if count:
            audit_record(
                actor=actor,
                action="delivery.replay",
                target=f"delivery #{delivery_ids[0]}" if count == 1 else "deliveries replay",
                reason=reason,
                project_id=next(iter(projects)) if len(projects) == 1 else None,
                after={"deliveries": count, "delivery_ids": list(delivery_ids)[:_AUDITED_IDS_MAX]},
            )
            transaction.on_commit(_wake_worker)
    log.info("deliveries_replayed", actor=actor, deliveries=count)
    return count


def _wake_worker() -> None:
    # Imported here, as the outbox does: the delivery module loads the HTTP client and the task machinery.
    from apps.entitlements.notifications.wakeup import fulfillment_wake

    fulfillment_wake()
