"""Compact list columns, so that the lists finance and support scan fit a 1400 px window.

Django's admin prints a datetime as "Nov. 28, 2026, 10:18 a.m." (about 180 px) and a Stripe id at
its full length (a Checkout session's is 66 characters, in one unbreakable run). These columns print
"2026-11-28 10:18" and "cs_live_a1B2…GHIJKL" with the whole id in the cell's title (hover) and in
search. Money and user ids are never shortened: those are what people read and copy.

Use as class attributes of a ModelAdmin, named in list_display:

    occurred = when("occurred_at", "occurred")
    session = short_id("stripe_session_id", "Stripe session")
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

# Prefix (type and mode: "cs_live_", "pi_3Q") and tail: enough to tell two ids apart on one page.
ID_HEAD = 10
ID_TAIL = 6
ID_MAX = ID_HEAD + ID_TAIL + 4
# Browsers break lines after a hyphen ("2026-" / "11-28") and around an ellipsis: these never break.
NOWRAP = '<span style="white-space: nowrap">{}</span>'


def compact_datetime(value: dt.datetime | None) -> SafeString | str:
    """The site's local time as 2026-11-28 10:18; the time may go under the date in a narrow column."""
    if value is None:
        return "-"
    local = timezone.localtime(value)
    return format_html(f"{NOWRAP} {NOWRAP}", local.strftime("%Y-%m-%d"), local.strftime("%H:%M"))


def compact_id(value: str) -> SafeString | str:
    """A long Stripe id as its head and tail, the whole id in the title; a short one as it is."""
    if len(value) <= ID_MAX:
        return value or "-"
    return format_html(
        '<span title="{}" style="white-space: nowrap">{}…{}</span>', value, value[:ID_HEAD], value[-ID_TAIL:]
    )


def when(field: str, description: str) -> Callable[[Any, Any], SafeString | str]:
    """A datetime column, sorted by the field."""

    @admin.display(description=description, ordering=field)
    def column(model_admin: Any, obj: Any) -> SafeString | str:
        return compact_datetime(getattr(obj, field))

    return column


def short_id(field: str, description: str) -> Callable[[Any, Any], SafeString | str]:
    """A Stripe id column, sorted by the field."""

    @admin.display(description=description, ordering=field)
    def column(model_admin: Any, obj: Any) -> SafeString | str:
        return compact_id(getattr(obj, field) or "")

    return column


def money(amount: int, currency: str) -> SafeString:
    """Minor units as stored, with the currency, on one line: 1249900 EUR."""
    return format_html(NOWRAP, f"{amount} {currency.upper()}")


def breakable(text: str) -> SafeString:
    """Text with line-break opportunities after each "." and "@" (an event type, a staff email), so that
    one long word does not widen its column. Nothing is cut, and a copy gives the same text."""
    escaped = str(escape(text))
    return mark_safe(escaped.replace(".", ".<wbr>").replace("@", "@<wbr>"))  # noqa: S308 - escaped first


def breakable_column(field: str, description: str) -> Callable[[Any, Any], SafeString]:
    """A text column (sorted by the field) that may wrap at "." and "@"."""

    @admin.display(description=description, ordering=field)
    def column(model_admin: Any, obj: Any) -> SafeString:
        return breakable(getattr(obj, field) or "")

    return column
