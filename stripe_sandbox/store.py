"""In-memory state: objects by id, list order per type, ids, the clock, persistence."""

from __future__ import annotations

import bisect
import json
import os
import secrets
import string
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import resource_missing

JsonObject = dict[str, Any]

_ID_ALPHABET = string.ascii_letters + string.digits
# Random bytes mapped onto the alphabet in one ``bytes.translate``: ids are made by the hundred
# thousand for benchmarks, and one ``secrets.choice`` per character cost seconds there. (256 is not
# a multiple of 62, so a few characters come up slightly more often: ids only need to be unique.)
_ID_TABLE = bytes(ord(_ID_ALPHABET[i % len(_ID_ALPHABET)]) for i in range(256))

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

# (created, sequence): the list order of an object; the sequence breaks ties of one second in
# creation order.
OrderKey = tuple[int, int]


@dataclass
class Order:
    """One type's ids sorted by (created, sequence), oldest first: a list request finds its place
    (``created`` bounds, a ``starting_after`` cursor) by bisection instead of scanning every object,
    so listing 100,000 objects page by page stays linear."""

    keys: list[OrderKey] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def add(self, key: OrderKey, object_id: str) -> None:
        if not self.keys or key > self.keys[-1]:
            self.keys.append(key)
            self.ids.append(object_id)
            return
        # Older than the newest (a back-dated bulk object): insert in place.
        at = bisect.bisect_left(self.keys, key)
        self.keys.insert(at, key)
        self.ids.insert(at, object_id)

    def extend(self, entries: list[tuple[OrderKey, str]]) -> None:
        """Add a batch sorted by key."""
        if not entries:
            return
        if not self.keys or entries[0][0] > self.keys[-1]:
            self.keys.extend(key for key, _ in entries)
            self.ids.extend(object_id for _, object_id in entries)
            return
        merged = sorted([*zip(self.keys, self.ids, strict=True), *entries])
        self.keys = [key for key, _ in merged]
        self.ids = [object_id for _, object_id in merged]

    def position(self, key: OrderKey) -> int:
        return bisect.bisect_left(self.keys, key)

    def created_at_least(self, created: int) -> int:
        """Index of the first object created at or after ``created``."""
        return bisect.bisect_left(self.keys, (created, -1))


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
        self.orders: dict[str, Order] = {}
        self.order_keys: dict[str, OrderKey] = {}
        self._sequence = 0

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
        return f"{prefix}_" + secrets.token_bytes(length).translate(_ID_TABLE).decode("ascii")

    def _next_key(self, obj: JsonObject) -> OrderKey:
        self._sequence += 1
        created = obj.get("created")
        return (created if isinstance(created, int) else self.now(), self._sequence)

    def add(self, obj: JsonObject) -> JsonObject:
        object_id = obj["id"]
        self.by_type.setdefault(obj["object"], {})[object_id] = obj
        self.by_id[object_id] = obj
        if object_id not in self.order_keys:
            key = self._next_key(obj)
            self.order_keys[object_id] = key
            self.orders.setdefault(obj["object"], Order()).add(key, object_id)
        self.version += 1
        return obj

    def add_many(self, objects: Iterable[JsonObject]) -> None:
        """``add`` for a batch (bulk creation): one merge into each type's order."""
        entries: dict[str, list[tuple[OrderKey, str]]] = {}
        for obj in objects:
            object_id = obj["id"]
            self.by_type.setdefault(obj["object"], {})[object_id] = obj
            self.by_id[object_id] = obj
            if object_id not in self.order_keys:
                key = self._next_key(obj)
                self.order_keys[object_id] = key
                entries.setdefault(obj["object"], []).append((key, object_id))
        for object_type, batch in entries.items():
            batch.sort()
            self.orders.setdefault(object_type, Order()).extend(batch)
        self.version += 1

    def order(self, object_type: str) -> Order:
        return self.orders.get(object_type) or Order()

    def position(self, object_id: str, object_type: str) -> int | None:
        """Where ``object_id`` sits in its type's list order; None when it is not of that type."""
        key = self.order_keys.get(object_id)
        if key is None or object_id not in self.by_type.get(object_type, {}):
            return None
        return self.order(object_type).position(key)

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
                # Each type's list order with its creation times: a deletion stub has no
                # ``created`` but keeps its place (a cursor may still name it).
                "order": {
                    t: [[key[0], i] for key, i in zip(o.keys, o.ids, strict=True)] for t, o in self.orders.items()
                },
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
        saved_order: dict[str, list[list[Any]]] = data.get("order") or {
            # A state file of an earlier version: insertion order, by creation time.
            t: [[objects[i].get("created", 0), i] for i in ids]
            for t, ids in data["types"].items()
        }
        for object_type, entries in saved_order.items():
            batch = []
            for created, object_id in entries:
                self._sequence += 1
                key = (int(created), self._sequence)
                self.order_keys[object_id] = key
                batch.append((key, object_id))
            batch.sort()
            self.orders[object_type] = Order([key for key, _ in batch], [object_id for _, object_id in batch])


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
