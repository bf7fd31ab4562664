"""Hosted Checkout sessions of invoices: create, regenerate, complete, expire; the sessions API."""
