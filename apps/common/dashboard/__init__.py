"""The admin dashboard: per-project figures (MRR, subscriptions, revenue, webhooks, reconciliation,
recovery) drawn with the vendored Chart.js, each also as a table. Reads only."""
