"""Reads of the webhooks app that views need."""

from __future__ import annotations

from apps.webhooks.models import ReplayRun


def replay_run_get(*, project_id: int, replay_id: int) -> ReplayRun | None:
    """A replay run of this project; None for an unknown id or another project's run."""
    return ReplayRun.objects.filter(pk=replay_id, project_id=project_id).first()
