"""CSV export of an admin list, streamed, with the list's current filters.

The changelist's "Export CSV" button links to `<changelist>/export.csv?<the list's query string>`.
The view builds the same ChangeList the page shows, so that its filters, date range and search
apply, then streams `values_list` rows from `QuerySet.iterator(chunk_size=...)`: a million rows go
out a chunk at a time, never loaded into memory as model instances. An admin action would only see
the ticked rows of one page, which is not what finance means by "export this list".
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponseBadRequest, HttpResponseBase, StreamingHttpResponse
from django.urls import URLPattern, path
from django.utils import timezone

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    _Base = ModelAdmin[Any]
else:
    _Base = object

EXPORT_PERMISSION = "common.export_data"
EXPORT_CHUNK_SIZE = 2000


class _Echo:
    """The file-like object csv.writer wants: each write returns the line instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        # One zone for every row of a file (the settings' zone), written with its offset.
        return timezone.localtime(value).isoformat() if timezone.is_aware(value) else value.isoformat()
    if value is None:
        return ""
    if isinstance(value, dict | list):  # a JSON column: JSON text, not Python's repr
        return json.dumps(value, sort_keys=True, default=str)
    return value


def csv_rows(header: Sequence[str], rows: Iterator[tuple[Any, ...]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([_cell(value) for value in row])


class CsvExportMixin(_Base):
    """Mixed into a ModelAdmin, before the admin class: `class XAdmin(CsvExportMixin, ReadOnlyAdmin[X])`.

    `export_fields` are `values_list` paths (a foreign key's `project__slug`, not the object);
    money is exported as it is stored, integer minor units next to a currency column.
    """

    export_fields: ClassVar[Sequence[str]] = ()
    export_chunk_size: ClassVar[int] = EXPORT_CHUNK_SIZE
    change_list_template = "admin/export/change_list.html"

    def get_urls(self) -> list[URLPattern]:
        opts = self.opts
        export = path(
            "export.csv",
            self.admin_site.admin_view(self.export_csv_view),
            name=f"{opts.app_label}_{opts.model_name}_export_csv",
        )
        return [export, *super().get_urls()]

    def has_export_permission(self, request: HttpRequest) -> bool:
        # Seeing a list is not enough to take all of it away in one file: exporting is its own
        # permission (superusers hold every permission).
        return bool(self.has_view_permission(request) and request.user.has_perm(EXPORT_PERMISSION))

    def export_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        """The rows the changelist shows (all pages), with its filters, search and ordering."""
        changelist = self.get_changelist_instance(request)
        queryset: QuerySet[Any] = changelist.get_queryset(request)
        return queryset

    def export_csv_view(self, request: HttpRequest) -> HttpResponseBase:
        if not self.has_export_permission(request):
            raise PermissionDenied
        try:
            queryset = self.export_queryset(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("Unknown filter in the query string.", content_type="text/plain")
        rows = queryset.values_list(*self.export_fields).iterator(chunk_size=self.export_chunk_size)
        response = StreamingHttpResponse(csv_rows(self.export_fields, rows), content_type="text/csv; charset=utf-8")
        model: type[Model] = self.model
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        filename = f"{model._meta.model_name}-{stamp}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        extra = {**(extra_context or {}), "can_export_csv": self.has_export_permission(request)}
        return super().changelist_view(request, extra)
