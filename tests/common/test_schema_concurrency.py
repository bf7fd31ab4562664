"""Simultaneous schema requests on a threaded server all succeed (drf-spectacular is not thread-safe)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.django_db(transaction=True)


def test_simultaneous_first_schema_requests_all_answer_200(live_server: Any) -> None:
    def fetch(_: int) -> int:
        return requests.get(f"{live_server.url}/api/schema/?format=json", timeout=60).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(fetch, range(6)))
    assert statuses == [200] * 6
