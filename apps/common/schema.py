"""OpenAPI naming for the one-view-per-operation style.

Each view nests its own `InputSerializer` and `OutputSerializer`; drf-spectacular would name all of
them "Input"/"Output" and collide, so components take the view's name as a prefix instead
(WhoAmIApi.OutputSerializer → WhoAmIOutput).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema


class AutoSchema(SpectacularAutoSchema):
    def _get_serializer_name(self, serializer: Any, direction: str, bypass_extensions: bool = False) -> str:
        name: str = super()._get_serializer_name(serializer, direction, bypass_extensions)
        qualname = type(serializer).__qualname__
        if "." in qualname and name.startswith(("Input", "Output")):
            owner = qualname.split(".")[0].removesuffix("Api")
            return owner + name
        return name
