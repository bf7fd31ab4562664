"""Declares the X-API-Key security scheme in the OpenAPI document.

Imported from AppConfig.ready(): importing drf_spectacular.openapi from authentication.py would
import DRF's views while DRF is still importing the authentication class (a cycle).
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from apps.projects.authentication import HEADER


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "apps.projects.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": HEADER,
            "description": "A key issued for your micro-app: `bk_<prefix>_<secret>`. Ask the billing team.",
        }
