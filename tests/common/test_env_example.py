"""Every environment variable the service reads is in .env.example and in the README's table.

The names are found in the code itself (calls of the env.py readers and os.environ look-ups), so a
new setting without documentation fails here instead of being discovered by an operator.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Where the service reads its environment: the settings and the few commands and modules that read it.
# devtools/ too: `make run`'s devstack reads PORT and STRIPE_SANDBOX_PORT.
SOURCES = [
    *sorted((ROOT / "billing_service").glob("*.py")),
    *sorted((ROOT / "apps").rglob("*.py")),
    *sorted((ROOT / "devtools").rglob("*.py")),
]
# How Django finds the settings, and what pytest-xdist sets in its workers (test_settings.py reads it):
# not settings of the service.
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE", "PYTEST_XDIST_WORKER"}
# The readers in billing_service/env.py whose second argument is a variable name too.
TWO_NAME_READERS = {"env_choice_aliased", "env_secrets"}


def _constant_names(args: list[ast.expr]) -> list[str]:
    return [arg.value for arg in args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]


def _is_os_environ(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name)


def _names_read(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            func_name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if func_name.startswith("env_") or func_name == "_raw":
                names.update(_constant_names(node.args[: 2 if func_name in TWO_NAME_READERS else 1]))
            elif isinstance(func, ast.Attribute) and func.attr in ("get", "setdefault", "pop"):
                if _is_os_environ(func.value):
                    names.update(_constant_names(node.args[:1]))
            elif func_name == "getenv":
                names.update(_constant_names(node.args[:1]))
        elif isinstance(node, ast.Subscript) and _is_os_environ(node.value):
            names.update(_constant_names([node.slice]))
        elif isinstance(node, ast.Compare) and any(_is_os_environ(c) for c in node.comparators):
            names.update(_constant_names([node.left]))
    return names


def variables_read() -> set[str]:
    names: set[str] = set()
    for path in SOURCES:
        if "migrations" not in path.parts:
            names |= _names_read(path.read_text())
    return names - NOT_SETTINGS


def example_variables() -> set[str]:
    """NAME=... lines of .env.example, commented out or not."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def readme_table_variables() -> set[str]:
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1])}


def test_the_scan_finds_the_settings_it_must() -> None:
    # Guards the scanner itself: one name per kind of read.
    assert {"DJANGO_ENV", "ENVIRONMENT", "STRIPE_WEBHOOK_SECRET", "PORT", "PROMETHEUS_MULTIPROC_DIR"} <= (
        variables_read()
    )


def test_every_variable_read_is_in_env_example() -> None:
    assert sorted(variables_read() - example_variables()) == []


def test_every_variable_read_is_in_the_readme_configuration_table() -> None:
    assert sorted(variables_read() - readme_table_variables()) == []


def test_env_example_lists_nothing_the_service_does_not_read() -> None:
    # The container-only variables are read by docker/ (gunicorn.conf.py, entrypoint.sh).
    container = set(re.findall(r"`([A-Z][A-Z0-9_]*)`", _readme_container_paragraph()))
    assert sorted(example_variables() - variables_read() - container) == []


def _readme_container_paragraph() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("The container adds")
    return text[start : text.index("\n\n", start)]


def test_env_example_parses_as_copied_and_with_every_line_uncommented() -> None:
    from billing_service.dotenv import dotenv_parse

    text = (ROOT / ".env.example").read_text()
    assert dotenv_parse(text) == {}  # as copied, it changes nothing
    uncommented = re.sub(r"^# ([A-Z][A-Z0-9_]*=)", r"\1", text, flags=re.MULTILINE)
    assert set(dotenv_parse(uncommented)) == example_variables()
