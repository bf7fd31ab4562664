"""One pooled httpx.Client and the retry policy of every call.

Retried: 429 (after its Retry-After), 5xx and transport errors (refused, reset, timed out), up to
`max_retries` more attempts with exponential backoff and jitter. A POST is retried only with an
Idempotency-Key (the same one on every attempt), or when the caller says it is safe to repeat.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

import httpx

from billing_client._version import __version__
from billing_client.errors import BillingError, RateLimited, ServiceUnavailable, error_for

logger = logging.getLogger("billing_client")

USER_AGENT = f"billing-client/{__version__}"
# The longest backoff between two attempts, whatever the attempt number.
MAX_BACKOFF_SECONDS = 10.0
# Worth another attempt: the network or the server may do better next time. Other transport errors (an
# unsupported URL scheme, a request httpx cannot send) would fail the same way again.
_TRANSIENT = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)


def new_idempotency_key() -> str:
    return f"billing-client-{uuid.uuid4().hex}"


def retry_after_seconds(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date (RFC 9110); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now())


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text or None


class HttpSession:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: float,
        max_retries: int,
        backoff_base: float,
        max_retry_wait: float,
        transport: httpx.BaseTransport | None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._max_retry_wait = max_retry_wait
        self._sleep = sleep
        # httpx.Client is safe to share between threads; its pool keeps the connections alive.
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"X-API-Key": api_key, "User-Agent": USER_AGENT, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout),
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def get(self, path: str, params: Mapping[str, str | int]) -> Any:
        return self.parsed(self.get_response(path, params))

    def get_response(self, path: str, params: Mapping[str, str | int]) -> httpx.Response:
        """A successful GET's whole response, for callers that read its headers too."""
        return self._send_response("GET", path, params=params, json=None, headers={}, retry_safe=True)

    def post(self, path: str, body: Mapping[str, Any], *, idempotency_key: str | None, repeatable: bool = False) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.parsed(
            self._send_response(
                "POST", path, params=None, json=body, headers=headers, retry_safe=repeatable or bool(idempotency_key)
            )
        )

    def _send_response(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None,
        json: Mapping[str, Any] | None,
        headers: Mapping[str, str],
        retry_safe: bool,
    ) -> httpx.Response:
        attempts = 1 + (self._max_retries if retry_safe else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._client.request(method, path, params=params, json=json, headers=headers)
            except httpx.TransportError as exc:
                if last or not isinstance(exc, _TRANSIENT):
                    raise ServiceUnavailable(
                        f"billing service unreachable: {method} {path}: {exc!r}", detail=str(exc)
                    ) from exc
                self._pause(attempt, None, f"{type(exc).__name__}", method, path)
                continue
            if response.is_success:
                return response
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            retryable = response.status_code == 429 or response.status_code >= 500
            if last or not retryable:
                raise error_for(response.status_code, _json_or_text(response), retry_after=retry_after)
            if response.status_code == 429 and retry_after is not None and retry_after > self._max_retry_wait:
                # Waiting that long would block the caller; retrying sooner would only be refused again.
                raise RateLimited(
                    f"billing service answered 429 with Retry-After {retry_after:.0f}s "
                    f"(longer than max_retry_wait {self._max_retry_wait:.0f}s)",
                    retry_after=retry_after,
                    status_code=429,
                    body=_json_or_text(response),
                )
            self._pause(attempt, retry_after, str(response.status_code), method, path)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _pause(self, attempt: int, retry_after: float | None, reason: str, method: str, path: str) -> None:
        if retry_after is not None:
            delay = retry_after
        else:
            ceiling = min(MAX_BACKOFF_SECONDS, self._backoff_base * 2**attempt)
            # Jitter spreads the retries of many clients hit by the same outage; not a security use.
            delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311
        logger.info(
            "billing_client retry %s %s after %s in %.3fs (attempt %d)", method, path, reason, delay, attempt + 1
        )
        self._sleep(delay)

    @staticmethod
    def parsed(response: httpx.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise BillingError(
                f"billing service answered {response.status_code} with a body that is not JSON",
                status_code=response.status_code,
                body=response.text,
            ) from exc
