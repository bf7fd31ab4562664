"""Read the official SDK's type annotations for the pinned API version.

The SDK imports the classes its annotations name only under ``TYPE_CHECKING``, so
``typing.get_type_hints`` needs those names supplied: they are collected from each module's own
``from stripe... import ...`` statements.
"""

from __future__ import annotations

import ast
import decimal
import functools
import importlib
import inspect
import sys
import typing
from typing import Any


@functools.cache
def _module_namespace(module_name: str) -> dict[str, Any]:
    module = sys.modules[module_name]
    namespace = dict(vars(module))
    source = inspect.getsource(module)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stripe"):
            imported = importlib.import_module(node.module)
            for alias in node.names:
                if hasattr(imported, alias.name):
                    namespace.setdefault(alias.asname or alias.name, getattr(imported, alias.name))
    return namespace


@functools.cache
def hints(cls: type) -> dict[str, Any]:
    """The public annotated fields of an SDK class (resource, nested object or params TypedDict)."""
    namespace = _module_namespace(cls.__module__)
    # Nested classes name their siblings unqualified (``Optional[Card]`` inside PaymentMethod).
    local: dict[str, Any] = {}
    for owner in _owners(cls):
        local.update({k: v for k, v in vars(owner).items() if isinstance(v, type)})
    resolved = typing.get_type_hints(cls, globalns=namespace, localns=local)
    # ``OBJECT_NAME`` and the like are class constants, not fields of the JSON.
    return {
        name: value
        for name, value in resolved.items()
        if not name.startswith("_") and not name.isupper() and typing.get_origin(value) is not typing.ClassVar
    }


def _owners(cls: type) -> list[type]:
    """The classes enclosing ``cls`` (outermost first), then ``cls`` itself."""
    module = sys.modules[cls.__module__]
    owners: list[type] = []
    node: Any = module
    for part in cls.__qualname__.split("."):
        node = getattr(node, part)
        owners.append(node)
    return owners


def literal_values(annotation: Any) -> set[str]:
    """The strings of the ``Literal[...]`` inside an annotation (``Union[Literal[...], str]``)."""
    values: set[str] = set()
    if typing.get_origin(annotation) is typing.Literal:
        return {v for v in typing.get_args(annotation) if isinstance(v, str)}
    for arg in typing.get_args(annotation):
        values |= literal_values(arg)
    return values


def sdk_class(object_name: str) -> type | None:
    """The SDK resource class for an ``object`` value (``checkout.session`` -> Session)."""
    from stripe._object_classes import OBJECT_CLASSES

    entry = OBJECT_CLASSES.get(object_name)
    if entry is None:
        return None
    import_path, class_name = entry
    cls: type = getattr(importlib.import_module(import_path), class_name)
    return cls


class Checker:
    """Compares JSON objects with the SDK's annotations; collects findings as readable lines.

    Findings: a field the class requires (not ``Optional``) is missing; a field the class does
    not declare is present; a value has the wrong type; a string is outside the ``Literal`` an
    enum field declares (the SDK's ``Union[Literal[...], str]`` only leaves room for values of
    later API versions, which the pinned version does not send); a non-Optional field is null.
    """

    def __init__(self, examples: dict[str, dict[str, Any]] | None = None) -> None:
        self.findings: set[str] = set()
        # Stripe's own example objects (fixtures3.json): a field the SDK no longer declares but
        # Stripe's example of the resource still carries (``invoice.subscription``, null) is Stripe's.
        self.examples = examples or {}

    def check_object(self, obj: dict[str, Any], cls: type | None = None, where: str = "") -> None:
        cls = cls or sdk_class(str(obj.get("object")))
        where = where or str(obj.get("object"))
        if cls is None:
            self.findings.add(f"{where}: no SDK class for object {obj.get('object')!r}")
            return
        declared = hints(cls)
        if not declared:  # UntypedStripeObject and friends: free-form
            return
        for name, annotation in declared.items():
            if name not in obj:
                if not _optional(annotation) and name not in _INCLUDABLE.get(str(obj.get("object")), ()):
                    self.findings.add(f"{where}.{name}: missing (required by {cls.__qualname__})")
                continue
            self.check_value(obj[name], annotation, f"{where}.{name}")
        example = self.examples.get(str(obj.get("object")), {}) if cls is sdk_class(str(obj.get("object"))) else {}
        for name in obj:
            if name not in declared and name not in example:
                self.findings.add(f"{where}.{name}: not a field of {cls.__qualname__}")

    def check_value(self, value: Any, annotation: Any, where: str) -> None:
        if value is None:
            if not _optional(annotation):
                self.findings.add(f"{where}: null, but not Optional ({_show(annotation)})")
            return
        forms = [f for f in _alternatives(annotation) if f is not type(None)]
        enum = set().union(*(literal_values(f) for f in forms))
        if enum and isinstance(value, str):
            if value not in enum:
                self.findings.add(f"{where}: {value!r} is not one of {sorted(enum)}")
            return
        fits: list[set[str]] = []
        for form in forms:
            trial = Checker(self.examples)
            if trial._matches(value, form, where):
                fits.append(trial.findings)
        if fits:
            # ``Union[Customer, DeletedCustomer]``: the form the value fits best decides.
            self.findings |= min(fits, key=len)
            return
        self.findings.add(f"{where}: {type(value).__name__} {_short(value)} does not fit {_show(annotation)}")

    def _matches(self, value: Any, form: Any, where: str) -> bool:
        origin = typing.get_origin(form)
        if form is Any:
            return True
        if form is bool:
            return isinstance(value, bool)
        if form is int:
            return isinstance(value, int) and not isinstance(value, bool)
        if form is float:
            return isinstance(value, int | float) and not isinstance(value, bool)
        if form is str:
            return isinstance(value, str)
        if form is decimal.Decimal:  # a decimal string in JSON; the SDK decodes it
            return isinstance(value, decimal.Decimal) or (isinstance(value, str) and _is_decimal(value))
        if origin is typing.Literal:
            return value in typing.get_args(form)
        if origin in (list, typing.List):  # noqa: UP006 - what the SDK writes
            if not isinstance(value, list):
                return False
            (item,) = typing.get_args(form)
            for index, element in enumerate(value):
                self.check_value(element, item, f"{where}[{index}]")
            return True
        if origin in (dict, typing.Dict):  # noqa: UP006
            if not isinstance(value, dict):
                return False
            _, item = typing.get_args(form)
            for key, element in value.items():
                self.check_value(element, item, f"{where}[{key}]")
            return True
        base = origin or form
        if isinstance(base, type) and base.__name__ in ("ListObject", "SearchResultObject"):
            if not isinstance(value, dict) or value.get("object") != "list":
                return False
            (item,) = typing.get_args(form) or (Any,)
            for index, element in enumerate(value.get("data", [])):
                self.check_value(element, item, f"{where}.data[{index}]")
            extra = set(value) - {"object", "data", "has_more", "url", "total_count"}
            if extra:
                self.findings.add(f"{where}: list has unexpected keys {sorted(extra)}")
            return True
        if isinstance(base, type) and base.__name__ == "UntypedStripeObject":
            return isinstance(value, dict)
        if isinstance(base, type):
            if not isinstance(value, dict):
                return False
            self.check_object(value, base, where)
            return True
        return False


# Fields a resource leaves out unless asked for (``expand[]`` of an includable field).
_INCLUDABLE: dict[str, tuple[str, ...]] = {
    "checkout.session": ("line_items",),
    "customer": ("cash_balance", "invoice_credit_balance", "sources", "subscriptions", "tax", "tax_ids"),
    "price": ("currency_options", "tiers"),
}


def _is_decimal(text: str) -> bool:
    try:
        decimal.Decimal(text)
    except decimal.InvalidOperation:
        return False
    return True


def _alternatives(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is typing.Union or type(annotation).__name__ == "UnionType":
        return [form for arg in typing.get_args(annotation) for form in _alternatives(arg)]
    return [annotation]


def _optional(annotation: Any) -> bool:
    return type(None) in _alternatives(annotation)


def _show(annotation: Any) -> str:
    return str(annotation).replace("typing.", "").replace("stripe.", "")[:160]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."
