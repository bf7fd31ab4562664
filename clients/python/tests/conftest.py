"""Fixtures of the SDK's tests. They need no database: the service is faked (sdk_fakes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from billing_client import BillingClient
from sdk_fakes import FakeService


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
def client(service: FakeService) -> Iterator[BillingClient]:
    with service.client() as billing:
        yield billing
