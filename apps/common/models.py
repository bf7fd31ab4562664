from __future__ import annotations

from django.db import models


class Heartbeat(models.Model):
    """The last time a background component proved it was alive (the worker runs a beat task).

    Exported on /metrics as a timestamp, so an alert can fire when the worker or beat stops.
    """

    name = models.CharField(max_length=64, unique=True)
    last_seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_seen_at.isoformat()}"
