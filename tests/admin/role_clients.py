"""Admin test clients logged in as a staff role, and the admin actions a list page offers them."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client


def as_role(client: Client, role: str) -> Client:
    """The client, logged in as a new staff user whose only group is `role` (roles_install() first)."""
    user = get_user_model().objects.create_user(f"{role}-tester", f"{role}@example.invalid", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return client


def actions_offered(client: Client, url: str) -> set[str]:
    """The action names the list page at `url` offers this client (empty when it shows no action form)."""
    response = client.get(url)
    assert response.status_code == 200, url
    form = response.context["action_form"]
    return set(dict(form.fields["action"].choices)) - {""} if form is not None else set()
