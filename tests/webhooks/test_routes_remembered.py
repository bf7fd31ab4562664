"""At receipt, a project found by its slug is remembered by the process for a few seconds."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.projects.models import Project
from apps.webhooks.models import ProcessorEvent
from tests.factories import ProjectFactory
from tests.webhooks.conftest import deliver, make_event

pytestmark = pytest.mark.django_db


def _paid(event_id: str, slug: str) -> dict[str, object]:
    obj = {"id": f"pi_{event_id}", "object": "payment_intent", "metadata": {"project": slug, "user_id": "u1"}}
    return make_event(event_id, "payment_intent.succeeded", obj=obj)


def _project_reads(client: Client, event: dict[str, object]) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert deliver(client, event).status_code == 200
    table = Project._meta.db_table
    return sum(1 for query in captured.captured_queries if f'FROM "{table}"' in query["sql"])


def test_the_second_event_of_a_project_is_routed_without_reading_the_project(client: Client) -> None:
    project = ProjectFactory.create(slug="remembered")
    assert _project_reads(client, _paid("evt_rr_1", "remembered")) == 1
    assert _project_reads(client, _paid("evt_rr_2", "remembered")) == 0
    routed = ProcessorEvent.objects.filter(stripe_event_id__in=["evt_rr_1", "evt_rr_2"])
    assert {row.project_id for row in routed} == {project.pk}


def test_an_unknown_slug_is_not_remembered_and_a_saved_project_is_seen_at_once(client: Client) -> None:
    assert deliver(client, _paid("evt_rr_3", "newcomer")).status_code == 200
    assert ProcessorEvent.objects.get(stripe_event_id="evt_rr_3").project_id is None
    project = ProjectFactory.create(slug="newcomer")
    assert deliver(client, _paid("evt_rr_4", "newcomer")).status_code == 200
    assert ProcessorEvent.objects.get(stripe_event_id="evt_rr_4").project_id == project.pk

    # Deleted and created again under the same slug: the new row, never the remembered one.
    ProcessorEvent.objects.filter(project=project).update(project=None)
    project.delete()
    again = ProjectFactory.create(slug="newcomer")
    assert deliver(client, _paid("evt_rr_5", "newcomer")).status_code == 200
    assert ProcessorEvent.objects.get(stripe_event_id="evt_rr_5").project_id == again.pk
