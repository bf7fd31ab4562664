"""Hosted pages: plain HTML forms standing in for Stripe Checkout and the customer portal."""
