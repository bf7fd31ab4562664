"""Stripe's test cards and test payment-method tokens, and how each behaves."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .errors import StripeError


@dataclass(frozen=True)
class Decline:
    code: str
    decline_code: str
    message: str


@dataclass(frozen=True)
class TestCard:
    number: str
    brand: str
    funding: str = "credit"
    # None: charges succeed. Otherwise attaching works and every charge is declined.
    charge_decline: Decline | None = None

    @property
    def last4(self) -> str:
        return self.number[-4:]

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.number.encode()).hexdigest()[:16]


GENERIC_DECLINE = Decline("card_declined", "generic_decline", "Your card was declined.")
INSUFFICIENT_FUNDS = Decline("card_declined", "insufficient_funds", "Your card has insufficient funds.")

TEST_CARDS = {
    card.number: card
    for card in (
        TestCard("4242424242424242", "visa"),
        TestCard("5555555555554444", "mastercard"),
        TestCard("4000000000000341", "visa", charge_decline=GENERIC_DECLINE),
        TestCard("4000000000009995", "visa", charge_decline=INSUFFICIENT_FUNDS),
        TestCard("4000000000000002", "visa", charge_decline=GENERIC_DECLINE),
    )
}

# Shown on the hosted checkout page, in this order.
CHECKOUT_CHOICES = [
    ("4242424242424242", "Visa 4242 - succeeds"),
    ("4000000000000341", "Visa 0341 - attaches, then charges fail"),
    ("4000000000009995", "Visa 9995 - declined, insufficient funds"),
]

TOKENS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_chargeCustomerFail": "4000000000000341",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
}


def _luhn_ok(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def card_for_number(number: str, param: str = "card[number]") -> TestCard:
    number = number.replace(" ", "")
    if number in TEST_CARDS:
        return TEST_CARDS[number]
    if not number.isdigit() or not 12 <= len(number) <= 19 or not _luhn_ok(number):
        raise StripeError(
            402, "Your card number is incorrect.", error_type="card_error", code="incorrect_number", param=param
        )
    brand = {"4": "visa", "5": "mastercard", "3": "amex"}.get(number[0], "unknown")
    return TestCard(number, brand)
