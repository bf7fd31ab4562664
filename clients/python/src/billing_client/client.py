"""BillingClient: the calls of the billing service, and has_feature answered from a local cache."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, get_args

import httpx

from billing_client._http import HttpSession, new_idempotency_key
from billing_client.cache import EntitlementCache, UserEntitlements
from billing_client.errors import BillingError, ServerError, ServiceUnavailable
from billing_client.models import (
    CheckoutSession,
    CheckResult,
    Entitlement,
    Grant,
    Notification,
    entitlements_from_json,
    version_from_json,
)
from billing_client.notifications import NotificationCallback, NotificationReceiver

# GET /api/v1/entitlements answers the user's version in this header.
VERSION_HEADER = "X-Entitlements-Version"

logger = logging.getLogger("billing_client")

OnUnavailable = Literal["fail_closed", "fail_open", "last_known"]
# The failures on_unavailable answers for: the service could not answer, as opposed to refusing the call.
_UNAVAILABLE = (ServiceUnavailable, ServerError)


class _CoolingDown(ServiceUnavailable):
    """Raised without a request while the service is presumed down (see unavailable_cooldown)."""


def _instant_text(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("datetimes sent to the billing service must be timezone-aware")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _unexpected(what: str, body: Any, exc: Exception) -> BillingError:
    return BillingError(f"unexpected answer to {what}: {exc!r}", body=body)


class BillingClient:
    """A client of one project of the billing service; share one instance per process (it is thread-safe).

    has_feature() and entitlements() answer from a per-user cache while it is fresh (cache_ttl seconds
    after a fetch or a pushed notification) and fetch the user's whole list otherwise. When the service
    cannot answer (unreachable, timing out, 5xx after the retries), on_unavailable decides: fail_closed
    (False), fail_open (True) or last_known (the cached answer however old; False if none). After such a
    failure the client does not call again for unavailable_cooldown seconds, so that an outage does not
    make every has_feature() wait for the retries.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        project_id: int,
        *,
        cache_ttl: float = 60.0,
        on_unavailable: OnUnavailable = "fail_closed",
        notification_secrets: str | Sequence[str] = (),
        signature_tolerance: float = 300,
        timeout: float = 5.0,
        max_retries: int = 3,
        backoff_base: float = 0.2,
        transport: httpx.BaseTransport | None = None,
        on_notification: NotificationCallback | None = None,
        max_retry_wait: float = 10.0,
        unavailable_cooldown: float = 5.0,
        cache_max_users: int = 100_000,
        remember_notification_ids: int = 10_000,
    ) -> None:
        if on_unavailable not in get_args(OnUnavailable):
            raise ValueError(f"on_unavailable must be one of {get_args(OnUnavailable)}, not {on_unavailable!r}")
        self.project_id = project_id
        self.on_unavailable: OnUnavailable = on_unavailable
        self._cooldown = unavailable_cooldown
        self._unavailable_until = 0.0
        self._http = HttpSession(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            max_retry_wait=max_retry_wait,
            transport=transport,
        )
        self._cache = EntitlementCache(ttl=cache_ttl, max_users=cache_max_users)
        self._receiver = NotificationReceiver(
            project_id=project_id,
            secrets=notification_secrets,
            tolerance=signature_tolerance,
            cache=self._cache,
            on_notification=on_notification,
            remember_ids=remember_notification_ids,
        )
        # One fetch per user at a time: the threads that miss together wait for the first one's answer.
        self._inflight: dict[str, Future[UserEntitlements]] = {}
        self._inflight_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BillingClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- entitlements, cached ------------------------------------------------------------------------

    def has_feature(self, user_id: str, feature_code: str) -> bool:
        """Whether the user has the feature now: no request while the user's cached list is fresh."""
        try:
            entry = self._entry(user_id)
        except _UNAVAILABLE as exc:
            known = self._cache.last_known(user_id) if self.on_unavailable == "last_known" else None
            answer = known.has(feature_code, time.time()) if known is not None else self.on_unavailable == "fail_open"
            self._log_policy(exc, user_id, f"has_feature({feature_code!r}) -> {answer}")
            return answer
        return entry.has(feature_code, time.time())

    def entitlements(self, user_id: str) -> list[Entitlement]:
        """The user's entitlements (each `active` as of now), from the same cache as has_feature().

        When the service cannot answer: last_known and fail_open give the cached list however old;
        with nothing cached, fail_closed and last_known give [] and fail_open raises (a list cannot be
        made up); fail_closed always gives [].
        """
        try:
            return self._entry(user_id).current()
        except _UNAVAILABLE as exc:
            known = self._cache.last_known(user_id) if self.on_unavailable != "fail_closed" else None
            if known is None and self.on_unavailable == "fail_open":
                raise
            self._log_policy(exc, user_id, "entitlements() -> " + ("[]" if known is None else "the last known list"))
            return [] if known is None else known.current()

    def invalidate(self, user_id: str) -> None:
        """Forget the user's cached list: the next has_feature() asks the service."""
        self._cache.invalidate(user_id)

    def handle_notification(self, body: bytes, headers: Mapping[str, str]) -> Notification:
        """Verify and apply a notification (raw body, request headers or WSGI environ).

        Raises InvalidSignature or InvalidNotification (answer 400); returns the notification with its
        `outcome`. Types other than entitlements.updated are returned for the caller to act on.
        """
        return self._receiver.handle(body, headers)

    # -- calls that always ask the service -----------------------------------------------------------

    def check(self, user_id: str, feature_code: str) -> CheckResult:
        """The service's own answer for one feature (not cached; on_unavailable does not apply)."""
        body = self._http.get(
            "/api/v1/entitlements/check",
            {"user_id": user_id, "project_id": self.project_id, "feature_code": feature_code},
        )
        try:
            return CheckResult.from_json(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise _unexpected("entitlements/check", body, exc) from exc

    def checkout_session(
        self,
        user_id: str,
        price_id: str,
        *,
        success_url: str,
        cancel_url: str,
        mode: Literal["subscription", "payment"] = "subscription",
        quantity: int | None = None,
        trial_days: int | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> CheckoutSession:
        payload: dict[str, Any] = {
            "user_id": user_id,
            "project_id": self.project_id,
            "price_id": price_id,
            "mode": mode,
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        optional = {"quantity": quantity, "trial_days": trial_days, "metadata": dict(metadata) if metadata else None}
        payload.update({key: value for key, value in optional.items() if value is not None})
        body = self._http.post(
            "/api/v1/checkout/session", payload, idempotency_key=idempotency_key or new_idempotency_key()
        )
        try:
            return CheckoutSession.from_json(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise _unexpected("checkout/session", body, exc) from exc

    def portal_session(self, user_id: str, return_url: str, *, idempotency_key: str | None = None) -> str:
        """The customer portal's URL; NotFound until the user has completed a checkout."""
        payload = {"user_id": user_id, "project_id": self.project_id, "return_url": return_url}
        body = self._http.post(
            "/api/v1/portal/session", payload, idempotency_key=idempotency_key or new_idempotency_key()
        )
        if not isinstance(body, dict) or not isinstance(body.get("portal_url"), str):
            raise BillingError("unexpected answer to portal/session: no portal_url", body=body)
        return str(body["portal_url"])

    def grant(
        self,
        user_id: str,
        feature_code: str,
        *,
        granted_by: str,
        reason: str,
        valid_from: datetime | None = None,
        valid_to: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> Grant:
        """Grant a feature by hand (scope admin:write); the user's cached list is dropped."""
        payload: dict[str, Any] = {
            "user_id": user_id,
            "project_id": self.project_id,
            "feature_code": feature_code,
            "granted_by": granted_by,
            "reason": reason,
        }
        if valid_from is not None:
            payload["valid_from"] = _instant_text(valid_from)
        if valid_to is not None:
            payload["valid_to"] = _instant_text(valid_to)
        try:
            body = self._http.post(
                "/api/v1/admin/grant", payload, idempotency_key=idempotency_key or new_idempotency_key()
            )
        finally:
            # Also on a failure: the grant may have been made before the answer was lost.
            self._cache.invalidate(user_id)
        try:
            return Grant.from_json(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise _unexpected("admin/grant", body, exc) from exc

    def revoke(self, user_id: str, feature_code: str, *, reason: str, revoked_by: str | None = None) -> int:
        """End the user's active grants of the feature now; returns how many ended (0 is not an error).

        Retried like a read: ending grants twice ends them once (a retry after a lost answer counts 0).
        """
        payload: dict[str, Any] = {
            "user_id": user_id,
            "project_id": self.project_id,
            "feature_code": feature_code,
            "reason": reason,
        }
        if revoked_by is not None:
            payload["revoked_by"] = revoked_by
        try:
            body = self._http.post("/api/v1/admin/revoke", payload, idempotency_key=None, repeatable=True)
        finally:
            self._cache.invalidate(user_id)
        if not isinstance(body, dict) or not isinstance(body.get("revoked"), int):
            raise BillingError("unexpected answer to admin/revoke: no revoked count", body=body)
        return int(body["revoked"])

    # -- internals -----------------------------------------------------------------------------------

    def _entry(self, user_id: str) -> UserEntitlements:
        entry = self._cache.fresh(user_id)
        if entry is not None:
            return entry
        if time.monotonic() < self._unavailable_until:
            raise _CoolingDown("billing service presumed unavailable (cooling down after a failure)")
        return self._load(user_id)

    def _load(self, user_id: str) -> UserEntitlements:
        with self._inflight_lock:
            pending = self._inflight.get(user_id)
            if pending is None:
                future: Future[UserEntitlements] = Future()
                self._inflight[user_id] = future
        if pending is not None:
            return pending.result()
        try:
            entry = self._fetch(user_id)
        except BaseException as exc:  # not swallowed: handed to the threads waiting on this fetch, re-raised
            if isinstance(exc, _UNAVAILABLE):
                self._unavailable_until = time.monotonic() + self._cooldown
            future.set_exception(exc)
            raise
        finally:
            with self._inflight_lock:
                del self._inflight[user_id]
        future.set_result(entry)
        return entry

    def _fetch(self, user_id: str) -> UserEntitlements:
        ticket = self._cache.ticket(user_id)
        response = self._http.get_response("/api/v1/entitlements", {"user_id": user_id, "project_id": self.project_id})
        body = self._http.parsed(response)
        try:
            entitlements = entitlements_from_json(body["entitlements"])
            # The service sends the version in a header, read before the rows (so they are never older).
            version = version_from_json(response.headers.get(VERSION_HEADER, body.get("version")))
        except (KeyError, TypeError, ValueError) as exc:
            raise _unexpected("entitlements", body, exc) from exc
        return self._cache.store_fetched(ticket, entitlements, version)

    def _log_policy(self, exc: BillingError, user_id: str, answer: str) -> None:
        # One warning per real failure; the calls answered during the cooldown that follows log at debug.
        level = logging.DEBUG if isinstance(exc, _CoolingDown) else logging.WARNING
        logger.log(
            level,
            "billing service unavailable (%s); %s for user %s by policy %s",
            exc,
            answer,
            user_id,
            self.on_unavailable,
        )
