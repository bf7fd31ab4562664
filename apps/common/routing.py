"""One URL served by several one-operation views (`GET /products` lists, `POST /products` creates).

Django routes by path only, so `routes_by_method(ProductListApi, ProductCreateApi)` is the one view
of the path: it hands each request to the view that answers its method (OPTIONS and any other
method to the first view, whose 405 then names every method of the path). Each view keeps its own
permissions, scopes, throttles and schema; the `Allow` header lists the methods of the whole path,
as a single view answering them all would.

drf-spectacular enumerates views from the URL patterns, one class per pattern:
`expand_method_routes` (a PREPROCESSING_HOOK in SPECTACULAR_SETTINGS) replaces the path's entries by
one per method, each with the view that serves it, so every operation keeps its own schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from rest_framework.views import APIView

ViewCallback = Callable[..., HttpResponseBase]


def routes_by_method(*views: type[APIView]) -> ViewCallback:
    """The view of one path whose methods are served by `views` (each method by one view only)."""
    routes: dict[str, ViewCallback] = {}
    for view in views:
        callback = view.as_view()
        for method in view().allowed_methods:
            if method == "OPTIONS":
                continue  # every APIView answers it; the first view does so for the path
            if method in routes:
                raise ValueError(f"{method} {view.__name__}: the method has a view already")
            routes[method] = callback
    first = views[0].as_view()
    if "GET" in routes and "HEAD" not in routes:
        routes["HEAD"] = routes["GET"]  # as Django's View does
    allowed = ", ".join(m.upper() for m in APIView.http_method_names if m.upper() in {*routes, "OPTIONS"})

    @csrf_exempt
    def route(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = routes.get(request.method or "", first)(request, *args, **kwargs)
        if response.has_header("Allow"):
            response["Allow"] = allowed
        return response

    # For expand_method_routes, and for whatever asks a DRF view callback for its class.
    route.routes = {m: c for m, c in routes.items() if m != "HEAD"}  # type: ignore[attr-defined]
    route.cls = views[0]  # type: ignore[attr-defined]
    route.initkwargs = {}  # type: ignore[attr-defined]
    return route


def expand_method_routes(endpoints: list[tuple[str, str, str, Any]]) -> list[tuple[str, str, str, Any]]:
    """drf-spectacular preprocessing hook: each method of a `routes_by_method` path, with its own view."""
    expanded: list[tuple[str, str, str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for path, path_regex, method, callback in endpoints:
        routes: dict[str, ViewCallback] | None = getattr(callback, "routes", None)
        pairs = list(routes.items()) if routes is not None else [(method, callback)]
        for routed_method, routed_callback in pairs:
            if (path, routed_method) not in seen:
                seen.add((path, routed_method))
                expanded.append((path, path_regex, routed_method, routed_callback))
    return expanded
