"""ListCursorPagination on its own: the codec round-trips what it hands out, including DRF's offset
cursors for tied sort keys (the API's lists sort on unique keys; the contract is in
tests/test_list_contract.py)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from apps.catalog.models import CatalogProduct
from apps.common.pagination import ListCursorPagination
from tests.conftest import Tenant
from tests.factories import CatalogProductFactory

pytestmark = pytest.mark.django_db


def _walk(ordering: str | tuple[str, ...], queryset: Any, limit: int) -> list[int]:
    seen: list[int] = []
    cursor: str | None = None
    while True:
        query = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        paginator = ListCursorPagination(ordering=ordering)
        page = paginator.paginate_queryset(queryset, Request(APIRequestFactory().get("/", query)))
        seen += [row.pk for row in page]
        cursor = paginator.get_paginated_response([]).data["next_cursor"]
        if cursor is None:
            return seen


def test_tied_sort_keys_page_with_offsets_and_lose_nothing(alice: Tenant) -> None:
    rows = [
        CatalogProductFactory.create(project=alice.project, slug=f"p-{n}", name="same" if n < 5 else f"z{n}")
        for n in range(8)
    ]
    queryset = CatalogProduct.objects.filter(project=alice.project)
    by_name = list(queryset.order_by("name", "id").values_list("id", flat=True))
    assert _walk(("name", "id"), queryset, 2) == by_name
    assert _walk("id", queryset, 3) == sorted(row.pk for row in rows)


def test_cursor_after_is_the_cursor_the_list_hands_out(alice: Tenant) -> None:
    rows = CatalogProductFactory.create_batch(3, project=alice.project, name="P")
    paginator = ListCursorPagination(ordering="id")
    queryset = CatalogProduct.objects.filter(project=alice.project)
    paginator.paginate_queryset(queryset, Request(APIRequestFactory().get("/", {"limit": "1"})))
    handed_out = paginator.get_paginated_response([]).data["next_cursor"]
    assert handed_out == ListCursorPagination.cursor_after(str(rows[0].pk))
    assert handed_out.replace("-", "").replace("_", "").isalnum()  # URL-safe, unpadded
