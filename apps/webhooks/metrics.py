"""Prometheus series of the webhook pipeline, and the ledger gauge read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

webhooks_received = Counter(
    "billing_webhooks_received_total",
    "Stripe webhook deliveries by outcome (accepted, duplicate, rejected, unavailable) and reject reason.",
    ["outcome", "reason"],
)
webhook_ack_seconds = Histogram(
    "billing_webhook_ack_seconds",
    "Time from receiving a Stripe webhook to answering it.",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
events_processed = Counter(
    "billing_webhook_events_processed_total",
    "Ledger events processed, by event type and resulting status (processed, ignored, failed).",
    ["type", "status"],
)
processing_seconds = Histogram(
    "billing_webhook_processing_seconds",
    "Time to process one ledger event (handler and ledger update).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
api_version_mismatches = Counter(
    "billing_webhook_api_version_mismatch_total",
    "Processing attempts refused because the event's api_version is not the pinned one, by api_version "
    "(counted in the worker; billing_webhook_ledger_wrong_api_version is the scrape-time view).",
    ["api_version"],
)
sweeper_requeued = Counter(
    "billing_webhook_sweeper_requeued_total",
    "Ledger rows the sweeper re-enqueued, by the status they were stuck in.",
    ["status"],
)

wakeups = Counter(
    "billing_webhook_wakeups_total",
    "Drain wake-ups published by web processes after storing events (one per burst), by outcome (published, failed).",
    ["outcome"],
)
drain_claims = Counter(
    "billing_webhook_drain_claimed_total",
    "Ledger rows claimed from the queue by drains (counted in the worker).",
)
drain_batch_size = Histogram(
    "billing_webhook_drain_batch_size",
    "Rows per claimed batch (at most WEBHOOK_BATCH_SIZE).",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
drain_errors = Counter(
    "billing_webhook_drain_errors_total",
    "Drain loops stopped by an error (the database away): their claimed rows wait for the sweeper.",
)


PAYMENT_FAILED = "payment_intent.payment_failed"


class LedgerCollector(Collector):
    """Series counted in the ledger when Prometheus scrapes, so every process reports the truth.

    Processing runs in the Celery worker; its own counters reach Prometheus through the multiprocess
    directory and the worker's exporter (docs/operations.md). These figures are read from the
    database instead, so any web process reports them right whatever else is scraped.
    """

    def describe(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        # Without describe() the registry would call collect() at registration, before migrations.
        yield GaugeMetricFamily("billing_webhook_ledger_events", "", labels=["status"])
        yield CounterMetricFamily("billing_payment_failures", "", labels=["project"])
        yield GaugeMetricFamily("billing_webhook_ledger_wrong_api_version", "", labels=["api_version"])
        yield GaugeMetricFamily("billing_webhook_queue_depth", "")
        yield GaugeMetricFamily("billing_webhook_queue_oldest_age_seconds", "")

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        from django.db.models import Count

        from apps.webhooks.models import ProcessorEvent

        gauge = GaugeMetricFamily(
            "billing_webhook_ledger_events", "Stripe events in the ledger, by status.", labels=["status"]
        )
        counts = dict(ProcessorEvent.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
        for status in ProcessorEvent.Status.values:
            gauge.add_metric([status], counts.get(status, 0))
        yield gauge

        # One per payment_intent.payment_failed event processed for a project (once per event
        # whatever the retries and replays); exposed as billing_payment_failures_total{project}.
        failures = CounterMetricFamily(
            "billing_payment_failures",
            "Failed payment attempts (payment_intent.payment_failed events processed), by project slug.",
            labels=["project"],
        )
        per_project = (
            ProcessorEvent.objects.filter(type=PAYMENT_FAILED, status=ProcessorEvent.Status.PROCESSED)
            .exclude(project__isnull=True)
            .values_list("project__slug")
            .annotate(n=Count("id"))
            .values_list("project__slug", "n")
        )
        for slug, count in per_project:
            failures.add_metric([slug], count)
        yield failures

        # Events waiting for an operator: failed because they came in another API version than the
        # pinned one (processing.api_version_mismatch). Zero once replayed or once the pin matches.
        from django.conf import settings

        wrong = GaugeMetricFamily(
            "billing_webhook_ledger_wrong_api_version",
            "Failed ledger events whose api_version is not the pinned one, by api_version.",
            labels=["api_version"],
        )
        per_version = (
            ProcessorEvent.objects.filter(status=ProcessorEvent.Status.FAILED)
            .exclude(api_version="")
            .exclude(api_version=settings.STRIPE_API_VERSION)
            .values_list("api_version")
            .annotate(n=Count("id"))
            .values_list("api_version", "n")
        )
        for api_version, count in per_version:
            wrong.add_metric([api_version], count)
        yield wrong

        # The ledger as a queue: rows waiting for a drain, and how long the oldest has waited.
        # Depth grows during a burst and drains back to 0; an age past a few seconds that keeps
        # growing means no drain runs (no worker, or the wake-ups and beat are failing).
        from django.utils import timezone

        from apps.webhooks.claims import ledger_queue_state

        state = ledger_queue_state()
        yield GaugeMetricFamily(
            "billing_webhook_queue_depth", "Ledger events received and not yet claimed by a drain.", value=state.depth
        )
        age = (timezone.now() - state.oldest).total_seconds() if state.oldest is not None else 0.0
        yield GaugeMetricFamily(
            "billing_webhook_queue_oldest_age_seconds",
            "How long the oldest ledger event waiting for a drain has waited (0 when none waits).",
            value=max(age, 0.0),
        )


ledger_collector = LedgerCollector()
