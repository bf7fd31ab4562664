"""The customer page: everything the service knows about one user of one project, on one admin page.

Reads are in selectors.py, the page and its POST-only actions in views.py; the URLs are added to
BillingCustomer's admin (apps/checkout/admin.py), so they live under the admin's own path.
"""
