"""Signed webhook delivery with Stripe's retry schedule, a delivery log and chaos switches."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .config import SandboxConfig
from .store import JsonObject, Store

log = logging.getLogger(__name__)

# Delay before each attempt, in seconds: immediately, 5 min, 30 min, 2 h, 5 h, then 10 h
# apart until three days have passed since the event -- Stripe's documented schedule.
RETRY_DELAYS_S = [0, 300, 1800, 7200, 18000]
STEADY_RETRY_DELAY_S = 36000
GIVE_UP_AFTER_S = 3 * 86400

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

_delivery_ids = itertools.count(1)
_drop_ids = itertools.count(1)


def retry_delays() -> list[int]:
    """Delays of every attempt Stripe would make (cumulative time stays within 3 days)."""
    delays: list[int] = []
    elapsed = 0
    attempt = 0
    while True:
        delay = RETRY_DELAYS_S[attempt] if attempt < len(RETRY_DELAYS_S) else STEADY_RETRY_DELAY_S
        if elapsed + delay > GIVE_UP_AFTER_S:
            return delays
        delays.append(delay)
        elapsed += delay
        attempt += 1


def signature_header(payload: str, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.{payload}".encode()
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_matches(enabled_events: list[str], event_type: str) -> bool:
    for pattern in enabled_events:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


@dataclass
class Attempt:
    at: float
    status: int | None
    error: str | None
    duration_ms: int


@dataclass
class DropRule:
    """Chaos: drop the next ``count`` original deliveries of events matching ``event_type``
    (a pattern as in ``enabled_events``), optionally only to one endpoint."""

    id: int
    count: int
    event_type: str = "*"
    endpoint_id: str | None = None
    dropped: int = 0

    def matches(self, event_type: str, endpoint_id: str) -> bool:
        return event_matches([self.event_type], event_type) and self.endpoint_id in (None, endpoint_id)


@dataclass
class Delivery:
    id: int
    event_id: str
    event_type: str
    endpoint_id: str
    url: str
    kind: str  # "original", "duplicate" (chaos) or "redelivery"
    status: str = "pending"  # pending -> succeeded | failed; or dropped (chaos: never attempted)
    attempts: list[Attempt] = field(default_factory=list)
    next_attempt_at: float | None = None


class DeliveryManager:
    def __init__(self, store: Store, config: SandboxConfig) -> None:
        self.store = store
        self.config = config
        self.log: list[Delivery] = []
        self.drop_rules: list[DropRule] = []
        # (event, endpoint) pairs counted in an event's pending_webhooks and not yet delivered.
        self._owed: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def matching_endpoints(self, event_type: str) -> list[JsonObject]:
        return [
            endpoint
            for endpoint in self.store.newest_first("webhook_endpoint")[::-1]
            if not endpoint.get("deleted")
            and endpoint["status"] == "enabled"
            and event_matches(endpoint["enabled_events"], event_type)
        ]

    def schedule(self, event: JsonObject, endpoints: list[JsonObject], kind: str = "original") -> list[Delivery]:
        payload = json.dumps(event, indent=2)
        created: list[Delivery] = []
        for endpoint in endpoints:
            if kind == "original":
                self._owed.add((event["id"], endpoint["id"]))
            if kind == "original" and self._drops(event["type"], endpoint["id"]):
                # Recorded, never attempted: the event keeps its pending webhook, so only the
                # Events API (or a redelivery) can tell the service about it.
                delivery = Delivery(
                    id=next(_delivery_ids),
                    event_id=event["id"],
                    event_type=event["type"],
                    endpoint_id=endpoint["id"],
                    url=endpoint["url"],
                    kind=kind,
                    status="dropped",
                )
                self.log.append(delivery)
                created.append(delivery)
                continue
            copies = [kind]
            if kind == "original" and random.random() < self.config.duplicate_probability:
                copies.append("duplicate")
            for copy_kind in copies:
                delivery = Delivery(
                    id=next(_delivery_ids),
                    event_id=event["id"],
                    event_type=event["type"],
                    endpoint_id=endpoint["id"],
                    url=endpoint["url"],
                    kind=copy_kind,
                )
                self.log.append(delivery)
                created.append(delivery)
                secret = self.store.meta(endpoint["id"])["secret"]
                task = asyncio.get_running_loop().create_task(self._run(delivery, payload, secret))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return created

    def add_drop(self, count: int, event_type: str = "*", endpoint_id: str | None = None) -> DropRule:
        rule = DropRule(next(_drop_ids), count, event_type, endpoint_id)
        self.drop_rules.append(rule)
        return rule

    def _drops(self, event_type: str, endpoint_id: str) -> bool:
        for rule in self.drop_rules:
            if rule.matches(event_type, endpoint_id):
                rule.count -= 1
                rule.dropped += 1
                if rule.count <= 0:
                    self.drop_rules.remove(rule)
                return True
        return random.random() < self.config.drop_probability

    async def _run(self, delivery: Delivery, payload: str, secret: str) -> None:
        if self.config.shuffle_max_delay_ms > 0:
            await asyncio.sleep(random.uniform(0, self.config.shuffle_max_delay_ms) / 1000)
        for delay in retry_delays():
            if delay:
                wait = delay * self.config.retry_time_scale
                delivery.next_attempt_at = time.time() + wait
                await asyncio.sleep(wait)
            delivery.next_attempt_at = None
            if await self._attempt(delivery, payload, secret):
                delivery.status = "succeeded"
                self._acknowledged(delivery)
                return
        delivery.status = "failed"

    async def _attempt(self, delivery: Delivery, payload: str, secret: str) -> bool:
        started = time.time()
        status: int | None = None
        error: str | None = None
        host = urlsplit(delivery.url).hostname or ""
        if host not in LOOPBACK_HOSTS and not self.config.allow_remote_webhooks:
            error = f"refused: {host} is not a loopback address (see allow_remote_webhooks)"
        else:
            # The signature uses real time, not the sandbox clock: receivers check it against
            # their own clock with a 5-minute tolerance (unless told their clock follows ours).
            signed_at = self.store.now() if self.config.sign_with_sandbox_clock else int(time.time())
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": signature_header(payload, secret, signed_at),
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks) stripe-sandbox",
            }
            try:
                session = self._client()
                timeout = aiohttp.ClientTimeout(total=self.config.delivery_timeout_s)
                async with session.post(delivery.url, data=payload.encode(), headers=headers, timeout=timeout) as resp:
                    await resp.read()
                    status = resp.status
            except TimeoutError:
                error = "timeout"
            except aiohttp.ClientError as exc:
                error = f"{type(exc).__name__}: {exc}"
        duration_ms = int((time.time() - started) * 1000)
        delivery.attempts.append(Attempt(at=started, status=status, error=error, duration_ms=duration_ms))
        return status is not None and 200 <= status < 300

    def _acknowledged(self, delivery: Delivery) -> None:
        """The first success per (event, endpoint) settles that endpoint's pending webhook, whether
        it is the original, its chaos duplicate, or a redelivery of one that failed or was dropped."""
        key = (delivery.event_id, delivery.endpoint_id)
        if key not in self._owed:
            return
        self._owed.discard(key)
        event = self.store.get(delivery.event_id, "event")
        if event is not None and event["pending_webhooks"] > 0:
            event["pending_webhooks"] -= 1

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50))
        return self._session

    def as_list(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        rows = []
        for delivery in self.log:
            row = asdict(delivery)
            if all(str(row.get(k)) == v for k, v in filters.items()):
                rows.append(row)
        return rows

    def reset(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        self.log.clear()
        self.drop_rules.clear()
        self._owed.clear()

    async def close(self) -> None:
        self.reset()
        if self._session is not None:
            await self._session.close()
