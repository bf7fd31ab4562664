from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.test import Client


@pytest.fixture
def support(db: None) -> User:
    user: User = get_user_model().objects.create_superuser("support", "support@example.invalid", "pw-for-tests")
    return user


@pytest.fixture
def staff(client: Client, support: User) -> Client:
    """A superuser's session: what the admin refuses here, it refuses to everyone."""
    client.force_login(support)
    return client
