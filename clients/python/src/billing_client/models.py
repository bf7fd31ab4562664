"""Typed answers of the service, parsed from its JSON.

The parsers raise ValueError, KeyError or TypeError on a shape they do not know; the caller turns that
into the right error (a BillingError for an answer, InvalidNotification for a notification).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

NotificationOutcome = Literal["applied", "stale", "duplicate", "other_project", "unhandled"]


def parse_instant(value: Any) -> datetime:
    """An ISO 8601 instant (`Z` or an offset) or a Unix timestamp, as an aware UTC datetime."""
    if isinstance(value, bool):
        raise TypeError("an instant cannot be a boolean")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    if not isinstance(value, str):
        raise TypeError(f"not an instant: {value!r}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"an instant without a time zone: {value!r}")
    return parsed.astimezone(UTC)


def _optional_instant(value: Any) -> datetime | None:
    return None if value is None else parse_instant(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"not a string: {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Entitlement:
    """One window during which the user has a feature; `valid_to` None means no end."""

    feature_code: str
    active: bool
    source: str
    source_id: int | None
    valid_from: datetime
    valid_to: datetime | None

    def is_active_at(self, instant: datetime) -> bool:
        return self.valid_from <= instant and (self.valid_to is None or instant < self.valid_to)

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Entitlement:
        source_id = item.get("source_id")
        return cls(
            feature_code=_text(item["feature_code"]),
            active=bool(item["active"]),
            source=_text(item["source"]),
            source_id=None if source_id is None else int(source_id),
            valid_from=parse_instant(item["valid_from"]),
            valid_to=_optional_instant(item.get("valid_to")),
        )


def entitlements_from_json(items: Any) -> tuple[Entitlement, ...]:
    if not isinstance(items, list):
        raise TypeError("entitlements must be a list")
    return tuple(Entitlement.from_json(item) for item in items)


def version_from_json(value: Any) -> int:
    """The per-(project, user) version; an answer without one (an older service) counts as 0."""
    if value is None:
        return 0
    if isinstance(value, str) and value.isdigit():  # the X-Entitlements-Version header
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"version must be an integer: {value!r}")
    return int(value)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The service's own answer for one feature (GET /entitlements/check)."""

    feature_code: str
    active: bool
    valid_to: datetime | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> CheckResult:
        return cls(
            feature_code=_text(body["feature_code"]),
            active=bool(body["active"]),
            valid_to=_optional_instant(body.get("valid_to")),
        )


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    checkout_url: str
    session_id: str
    expires_at: datetime | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> CheckoutSession:
        return cls(
            checkout_url=_text(body["checkout_url"]),
            session_id=_text(body["session_id"]),
            expires_at=_optional_instant(body.get("expires_at")),
        )


@dataclass(frozen=True, slots=True)
class Grant:
    grant_id: int
    user_id: str
    feature_code: str
    valid_from: datetime
    valid_to: datetime | None
    granted_by: str = ""
    reason: str = ""

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Grant:
        return cls(
            grant_id=int(body["grant_id"]),
            user_id=_text(body["user_id"]),
            feature_code=_text(body["feature_code"]),
            valid_from=parse_instant(body["valid_from"]),
            valid_to=_optional_instant(body.get("valid_to")),
            granted_by=str(body.get("granted_by", "")),
            reason=str(body.get("reason", "")),
        )


@dataclass(frozen=True, slots=True)
class Notification:
    """A verified notification and what the client did with it.

    `outcome`: applied (the cache took it), stale (a newer version was cached), duplicate
    (this id was handled already), other_project (not this client's project), unhandled (a type the
    client does not act on: it is still returned, for the application's own handling).
    """

    id: str
    type: str
    created: datetime
    project_id: int | str
    data: Mapping[str, Any]
    outcome: NotificationOutcome = "unhandled"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
