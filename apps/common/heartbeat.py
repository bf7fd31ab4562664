"""The worker's heartbeat: a row beat's tick updates, exported as a timestamp on /metrics."""

from __future__ import annotations

from django.db.models import F
from django.utils import timezone

from apps.common.models import Heartbeat


def heartbeat_record(name: str = "worker") -> int:
    """Stamps `name` alive now and counts the beat; the number of beats so far."""
    now = timezone.now()
    updated = Heartbeat.objects.filter(name=name).update(last_seen_at=now, beats=F("beats") + 1)
    if not updated:
        Heartbeat.objects.get_or_create(name=name, defaults={"last_seen_at": now, "beats": 1})
    return int(Heartbeat.objects.values_list("beats", flat=True).get(name=name))
