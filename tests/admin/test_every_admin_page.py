"""Every page of every registered admin opens: changelist (and its search), add page, change page.

The project change page once answered 500 (a slug both prepopulated and read-only) and nothing
noticed, because no test opened it. Here the list of models comes from the admin's own registry,
so a model registered later is opened too, and fails the coverage test below until it has a row
factory in tests/admin/factories.py or an explicit exemption with its reason.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.db.models import Model
from django.test import Client, RequestFactory
from django.urls import reverse

from tests.factories import (
    ADMIN_ROW_FACTORIES,
    EXEMPT_FROM_ROWS,
    THIRD_PARTY_MIRRORS,
    make_admin_rows,
)

pytestmark = pytest.mark.django_db

REGISTERED: list[type[Model]] = sorted(admin.site._registry, key=lambda model: model._meta.label_lower)


def _needs_a_row(model: type[Model]) -> bool:
    label = model._meta.label_lower
    return model._meta.app_label not in THIRD_PARTY_MIRRORS and label not in EXEMPT_FROM_ROWS


def test_every_registered_model_has_a_row_factory_or_a_stated_exemption() -> None:
    without = [
        m._meta.label_lower for m in REGISTERED if _needs_a_row(m) and m._meta.label_lower not in ADMIN_ROW_FACTORIES
    ]
    assert without == [], f"add a factory to tests/admin/factories.py (or an exemption with its reason): {without}"
    registered = {m._meta.label_lower for m in REGISTERED}
    stale = sorted((set(ADMIN_ROW_FACTORIES) | set(EXEMPT_FROM_ROWS)) - registered)
    assert stale == [], f"no longer registered in the admin: {stale}"
    assert all(reason.strip() for reason in EXEMPT_FROM_ROWS.values())


def _url(model: type[Model], view: str, *args: Any) -> str:
    # quote(), as the admin's own links: a text key such as "ntf_22..." would otherwise be read back as
    # 'ntf"...' (the admin's unquote turns "_22" into a double quote) and its page would not be found.
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=[quote(a) for a in args])


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label_lower)
def test_the_admin_pages_of_each_model_open(admin_client: Client, admin_user: User, model: type[Model]) -> None:
    rows = make_admin_rows()
    model_admin = admin.site._registry[model]
    label = model._meta.label_lower

    changelist = admin_client.get(_url(model, "changelist"))
    assert changelist.status_code == 200, changelist.content.decode()[:3000]
    if model_admin.search_fields:
        assert admin_client.get(_url(model, "changelist"), {"q": "factory"}).status_code == 200

    request = RequestFactory().get("/")
    request.user = admin_user
    if model_admin.has_add_permission(request):
        add = admin_client.get(_url(model, "add"))
        assert add.status_code == 200, add.content.decode()[:3000]

    row = rows.get(label) or model._default_manager.order_by("pk").first()
    if row is None:
        assert not _needs_a_row(model), f"{label} has no row, so its change page was never opened"
        return
    assert changelist.context["cl"].result_count >= 1 or label not in rows
    change = admin_client.get(_url(model, "change", row.pk))
    assert change.status_code == 200, change.content.decode()[:3000]
    assert change.context["original"].pk == row.pk
