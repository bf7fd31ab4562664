"""A Django view that receives the service's notifications: `path("billing/notify", notification_view(client))`.

Django is imported when the view is built, not when billing_client is: the package works without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from billing_client.client import BillingClient
from billing_client.errors import InvalidNotification

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse


def notification_view(client: BillingClient) -> Callable[[HttpRequest], HttpResponse]:
    """A POST-only view, exempt from CSRF (the signature authenticates the sender): 204, or 400 with the reason."""
    from django.http import HttpResponse
    from django.views.decorators.csrf import csrf_exempt
    from django.views.decorators.http import require_POST

    @csrf_exempt
    @require_POST
    def billing_notification(request: HttpRequest) -> HttpResponse:
        try:
            client.handle_notification(request.body, request.headers)
        except InvalidNotification as exc:
            return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
        return HttpResponse(status=204)

    return billing_notification
