"""apps/webhooks keeps only routing and dispatch: it imports no model of another app.

Writes to another app's rows go through that app's services, and reads through its selectors, so
that each app's state machine lives in one place (issue 9, point 2). Parsed, not imported: an
import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

WEBHOOKS = Path(__file__).resolve().parents[2] / "apps" / "webhooks"

# (module, imported models module) -> why it may stay.
ALLOWED = {
    ("apps/webhooks/models.py", "apps.projects.models"): "ProcessorEvent and ReplayRun have a foreign key to Project",
}


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_modules(tree: ast.AST) -> list[str]:
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            # Types only: never executed, so nothing can be read or written through them.
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
            if node.module.count(".") == 1:  # `from apps.checkout import models`
                found.extend(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _foreign_models_module(module: str) -> bool:
    parts = module.split(".")
    return len(parts) >= 3 and parts[0] == "apps" and parts[1] != "webhooks" and parts[2] == "models"


def test_webhooks_imports_no_model_of_another_app() -> None:
    offending: list[str] = []
    for path in sorted(WEBHOOKS.rglob("*.py")):
        relative = path.relative_to(WEBHOOKS.parents[1]).as_posix()
        if "/migrations/" in relative:
            continue  # migrations name other apps' models by their own means
        for module in _imported_modules(ast.parse(path.read_text(), filename=relative)):
            if _foreign_models_module(module) and (relative, module) not in ALLOWED:
                offending.append(f"{relative} imports {module}")
    assert not offending, "use the owning app's services and selectors instead:\n" + "\n".join(offending)


def test_the_check_catches_an_import_of_another_apps_models() -> None:
    tree = ast.parse(
        "from apps.checkout.models import CheckoutSession\n"
        "from apps.catalog import models\n"
        "def f():\n    import apps.entitlements.models\n"
        "if TYPE_CHECKING:\n    from apps.projects.models import Project\n"
    )
    flagged = [module for module in _imported_modules(tree) if _foreign_models_module(module)]
    assert flagged == ["apps.checkout.models", "apps.catalog.models", "apps.entitlements.models"]


def test_every_allowed_exception_is_still_needed() -> None:
    for relative, module in ALLOWED:
        source = (WEBHOOKS.parents[1] / relative).read_text()
        assert module in _imported_modules(ast.parse(source)), f"{relative} no longer imports {module}: drop it"
