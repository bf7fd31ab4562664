"""In-memory state: objects by id, insertion order per type, ids, the clock, persistence."""

from __future__ import annotations

import json
import os
import secrets
import string
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import resource_missing

JsonObject = dict[str, Any]

_ID_ALPHABET = string.ascii_letters + string.digits

# Which object an id prefix names, so ``expand[]`` and generic lookups can find any id.
PREFIX_TO_OBJECT = {
    "acct": "account",
    "bps": "billing_portal.session",
    "ch": "charge",
    "clock": "test_helpers.test_clock",
    "cs": "checkout.session",
    "cus": "customer",
    "evt": "event",
    "il": "line_item",
    "in": "invoice",
    "inpay": "invoice_payment",
    "li": "item",
    "pi": "payment_intent",
    "pm": "payment_method",
    "price": "price",
    "prod": "product",
    "re": "refund",
    "si": "subscription_item",
    "sub": "subscription",
    "we": "webhook_endpoint",
}

# Human names used in ``No such ...`` messages.
KIND_NAMES = {
    "checkout.session": "checkout.session",
    "billing_portal.session": "billing_portal.session",
    "payment_intent": "payment_intent",
    "payment_method": "PaymentMethod",
    "webhook_endpoint": "webhook endpoint",
    "test_helpers.test_clock": "test clock",
}

STATE_FILE_NAME = "stripe_sandbox_state.json"


class Store:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        # type -> id -> object; dicts keep insertion order, which is creation order.
        self.by_type: dict[str, dict[str, JsonObject]] = {}
        self.by_id: dict[str, JsonObject] = {}
        # Side data Stripe does not show (card numbers, checkout line items, dunning state).
        self.internal: dict[str, JsonObject] = {}
        self.clock_offset: float = 0.0
        self.version = 0

    # -- time ---------------------------------------------------------------------------
    def now(self) -> int:
        """Sandbox "now": real time plus the test-clock offset."""
        return int(time.time() + self.clock_offset)

    def move_clock_to(self, timestamp: int) -> None:
        """Move "now" forward to ``timestamp``; the clock never goes backwards."""
        self.clock_offset = max(self.clock_offset, timestamp - time.time())
        self.version += 1

    # -- ids and objects ----------------------------------------------------------------
    @staticmethod
    def new_id(prefix: str, length: int = 24) -> str:
        return f"{prefix}_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))

    def add(self, obj: JsonObject) -> JsonObject:
        self.by_type.setdefault(obj["object"], {})[obj["id"]] = obj
        self.by_id[obj["id"]] = obj
        self.version += 1
        return obj

    def replace(self, obj: JsonObject) -> None:
        """Swap an object for another with the same id (deletion stubs)."""
        old = self.by_id.get(obj["id"])
        object_type = old["object"] if old else obj["object"]
        self.by_type.setdefault(object_type, {})[obj["id"]] = obj
        self.by_id[obj["id"]] = obj
        self.version += 1

    def touch(self) -> None:
        self.version += 1

    def get(self, object_id: str, object_type: str | None = None) -> JsonObject | None:
        obj = self.by_id.get(object_id)
        if obj is None:
            return None
        if object_type is not None and obj.get("object") != object_type:
            return None
        return obj

    def require(self, object_id: str, object_type: str, param: str = "id") -> JsonObject:
        obj = self.get(object_id, object_type)
        if obj is None or obj.get("deleted"):
            raise resource_missing(KIND_NAMES.get(object_type, object_type), object_id, param)
        return obj

    def newest_first(self, object_type: str) -> list[JsonObject]:
        return list(reversed(self.by_type.get(object_type, {}).values()))

    def meta(self, object_id: str) -> JsonObject:
        return self.internal.setdefault(object_id, {})

    def lookup_by_prefix(self, object_id: str) -> JsonObject | None:
        prefix = object_id.split("_", 1)[0]
        if prefix == "cs":
            return self.by_id.get(object_id)
        return self.by_id.get(object_id) if prefix in PREFIX_TO_OBJECT else None

    # -- persistence --------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(
            {
                "clock_offset": self.clock_offset,
                "objects": [obj for objects in self.by_type.values() for obj in objects.values()],
                "types": {t: list(objs) for t, objs in self.by_type.items()},
                "internal": self.internal,
            }
        )

    def load_json(self, text: str) -> None:
        data = json.loads(text)
        self.reset()
        objects = {obj["id"]: obj for obj in data["objects"]}
        for object_type, ids in data["types"].items():
            self.by_type[object_type] = {i: objects[i] for i in ids}
        self.by_id = objects
        self.internal = data["internal"]
        self.clock_offset = float(data["clock_offset"])


def write_state_file(directory: Path, payload: str) -> None:
    """Atomic write (temp file + rename) so a crash never leaves half a state file. Blocking:
    call it from a worker thread."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".state-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(payload)
    os.replace(tmp, directory / STATE_FILE_NAME)


def read_state_file(directory: Path) -> str | None:
    path = directory / STATE_FILE_NAME
    return path.read_text(encoding="utf-8") if path.exists() else None
