"""Layering rules, checked on the source: the web framework's exceptions stay in the API layer.

Services, selectors, models, admin, commands and tasks raise and catch plain errors
(apps/common/exceptions.py, Django's ValidationError); only the modules that speak HTTP may import
`rest_framework.exceptions`, and apps/common/errors.py maps the plain errors to DRF's answers.
"""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The modules that speak HTTP: views and their helpers, auth, throttles, parsers, the error
# envelope, the API's Idempotency-Key, pagination, query parsing, the schema and strict typing.
API_LAYER = (
    "api*.py",
    "permissions.py",
    "authentication.py",
    "throttling.py",
    "parsers.py",
    "errors.py",
    "idempotency.py",
    "pagination.py",
    "query.py",
    "schema*.py",
    "strict.py",
)


def _imports_drf_exceptions(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "rest_framework.exceptions":
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "rest_framework"
            and any(alias.name == "exceptions" for alias in node.names)
        ):
            return True
        if isinstance(node, ast.Import) and any(a.name.startswith("rest_framework.exceptions") for a in node.names):
            return True
    return False


def _offenders() -> list[str]:
    offenders = []
    for module in sorted([*ROOT.glob("apps/**/*.py"), *ROOT.glob("billing_service/**/*.py")]):
        if any(fnmatch(module.name, pattern) for pattern in API_LAYER):
            continue
        if _imports_drf_exceptions(ast.parse(module.read_text(), filename=str(module))):
            offenders.append(str(module.relative_to(ROOT)))
    return offenders


def test_only_the_api_layer_imports_drfs_exceptions() -> None:
    assert _offenders() == []


def test_the_rule_sees_every_spelling_of_the_import() -> None:
    for source in (
        "from rest_framework.exceptions import ValidationError",
        "from rest_framework import exceptions, status",
        "import rest_framework.exceptions",
        "def f():\n    from rest_framework.exceptions import NotFound",
    ):
        assert _imports_drf_exceptions(ast.parse(source)), source
    assert not _imports_drf_exceptions(ast.parse("from rest_framework import serializers"))
