"""JSON bodies whose values have the type the OpenAPI schema declares, and no other.

DRF's fields are lenient by design: a CharField turns `0` into "0", an IntegerField takes "12" and
12.0, a BooleanField takes 0 and "yes", a DecimalField takes 0.9. For form posts that is useful; for
a JSON API it hides callers' bugs (`{"feature_code": 0}` mapped a price to the feature "0") and makes
the schema lie. `strict_json_types` makes every field of a bound serializer, nested ones included,
refuse a JSON value of another type with DRF's own field-error shape ("Not a valid string.").

It works on a serializer *instance*: each instance owns deep copies of its fields, so making those
copies strict changes nothing for other instances, and the 20-odd input serializers (some in files
owned by other features) need no edit. Query-string serializers must not use it: every query value
is a string on the wire.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework import serializers

Field = serializers.Field[Any, Any, Any, Any]

# Field class → the Python types its JSON value may have; the first match in this order wins
# (DecimalField and the CharField family before anything they might subclass).
_EXPECTED: tuple[tuple[type[Any], tuple[type[Any], ...], str], ...] = (
    (serializers.BooleanField, (bool,), "Must be a valid boolean."),
    (serializers.IntegerField, (int,), "A valid integer is required."),
    (serializers.FloatField, (int, float), "A valid number is required."),
    # A decimal string ("0.9"), as the schema says: a JSON float would lose digits before we see it.
    (serializers.DecimalField, (str,), 'A decimal string such as "0.9" is required.'),
    (serializers.CharField, (str,), "Not a valid string."),
    (serializers.MultipleChoiceField, (list,), "Expected a list of items."),
    (serializers.ChoiceField, (str,), "Not a valid string."),
    (serializers.DateTimeField, (str,), "Not a valid string."),
    (serializers.DateField, (str,), "Not a valid string."),
    (serializers.DurationField, (str,), "Not a valid string."),
    (serializers.UUIDField, (str,), "Not a valid string."),
)
_STRICT_CLASSES: dict[type[Any], type[Any]] = {}


def _expectation(field_class: type[Any]) -> tuple[tuple[type[Any], ...], str] | None:
    for base, types, message in _EXPECTED:
        if issubclass(field_class, base):
            return types, message
    return None


def _strict_class(field_class: type[Any]) -> type[Any] | None:
    if field_class in _STRICT_CLASSES.values():
        return None  # already strict
    if field_class not in _STRICT_CLASSES:
        expectation = _expectation(field_class)
        if expectation is None:
            return None
        types, message = expectation
        lenient: Callable[[Any, Any], Any] = field_class.to_internal_value

        def to_internal_value(self: Field, data: Any) -> Any:
            # bool is an int in Python, never in JSON.
            if not isinstance(data, types) or (isinstance(data, bool) and bool not in types):
                raise serializers.ValidationError(message, code="invalid")
            return lenient(self, data)

        _STRICT_CLASSES[field_class] = type(
            f"Strict{field_class.__name__}", (field_class,), {"to_internal_value": to_internal_value}
        )
    return _STRICT_CLASSES[field_class]


def strict_json_types(field: Field | serializers.BaseSerializer[Any]) -> None:
    """Makes `field` and everything under it refuse JSON values of another type (in place)."""
    if isinstance(field, serializers.ListSerializer):
        if field.child is not None:
            strict_json_types(field.child)
    elif isinstance(field, serializers.Serializer):
        for child in field.fields.values():
            strict_json_types(child)
    elif isinstance(field, serializers.ListField | serializers.DictField):
        if field.child is not None:
            strict_json_types(field.child)
    else:
        strict = _strict_class(type(field))
        if strict is not None:
            # The same object, now of a subclass that only adds the type check: its arguments,
            # validators and binding stay as they were.
            field.__class__ = strict
