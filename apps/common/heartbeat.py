"""The worker's heartbeat: a row beat's tick updates, exported as a timestamp on /metrics."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.common.models import Heartbeat


def heartbeat_record(name: str = "worker") -> int:
    """Stamps `name` alive now and counts the beat; the number of beats so far."""
    now = timezone.now()
    # One transaction: a worker killed while its UPDATE waits never sends the COMMIT, so the beat of
    # a run recorded failed is rolled back instead of committed by its orphaned session.
    with transaction.atomic():
        updated = Heartbeat.objects.filter(name=name).update(last_seen_at=now, beats=F("beats") + 1)
        if not updated:
            Heartbeat.objects.get_or_create(name=name, defaults={"last_seen_at": now, "beats": 0})
            Heartbeat.objects.filter(name=name).update(beats=F("beats") + 1)
        return int(Heartbeat.objects.values_list("beats", flat=True).get(name=name))
