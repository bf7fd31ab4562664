"""Invoices: pricing configured products into integer lines, the status machine, and the API."""
