"""The service's URLs plus /bench/bare: a plain Django JSON view (no DRF, no auth, no cache).

Served by the same gunicorn, through the same middleware, so check/bare is the cost of the
entitlement check itself.
"""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from billing_service.urls import bad_request, not_found, server_error
from billing_service.urls import urlpatterns as service_urlpatterns


def bare(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/bare", bare, name="bench-bare"), *service_urlpatterns]

handler404 = not_found
handler400 = bad_request
handler500 = server_error
