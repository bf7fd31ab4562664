"""Minor units shown as amounts for people: 2610 usd -> "26.10 USD", 500 jpy -> "500 JPY"."""

from __future__ import annotations

from apps.recovery.notify import THREE_DECIMAL, ZERO_DECIMAL


def currency_digits(currency: str) -> int:
    currency = currency.lower()
    return 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2


def money(amount: int, currency: str) -> str:
    digits = currency_digits(currency)
    sign = "-" if amount < 0 else ""
    if digits == 0:
        return f"{sign}{abs(amount)} {currency.upper()}"
    major, minor = divmod(abs(amount), 10**digits)
    return f"{sign}{major}.{minor:0{digits}d} {currency.upper()}"


def major_units(amount: int, currency: str) -> float:
    """For the charts' axes only (the tables show the exact amounts)."""
    return float(amount) / float(10 ** currency_digits(currency))
