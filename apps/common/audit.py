"""Writing to the append-only audit log (grants and revokes, replays)."""

from __future__ import annotations

from typing import Any

from apps.common.models import AuditLog
from apps.projects.models import Project


def audit_record(
    *,
    actor: str,
    action: str,
    target: str,
    reason: str = "",
    project: Project | None = None,
    project_id: int | None = None,
    before: Any = None,
    after: Any = None,
) -> AuditLog:
    """Call inside the transaction of the change it records, so that both commit or neither does."""
    return AuditLog.objects.create(
        actor=actor,
        action=action,
        target=target,
        reason=reason,
        project_id=project.pk if project is not None else project_id,
        before=before,
        after=after,
    )
