"""The sandbox's state holder: store, switches, event recording and webhook delivery."""

from __future__ import annotations

import asyncio
import copy
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import DEFAULT_API_KEY, context
from .config import SandboxConfig
from .delivery import DeliveryManager
from .faults import FaultRegistry
from .idempotency import IdempotencyCache
from .shapes import catalog
from .stats import RequestStats
from .store import JsonObject, Store, read_state_file, write_state_file

log = logging.getLogger(__name__)


class Sandbox:
    def __init__(self, config: SandboxConfig, data_dir: Path | None = None, api_key: str = DEFAULT_API_KEY) -> None:
        self.api_key = api_key
        self.initial_config = replace(config)
        self.config = config
        self.data_dir = data_dir
        self.public_url = "http://127.0.0.1"
        self.store = Store()
        self.faults = FaultRegistry()
        self.idempotency = IdempotencyCache()
        self.delivery = DeliveryManager(self.store, self.config)
        self.stats = RequestStats()
        self._saved_version = -1
        self._save_handle: asyncio.TimerHandle | None = None
        if data_dir is not None:
            text = read_state_file(data_dir)
            if text is not None:
                self.store.load_json(text)
                self._saved_version = self.store.version

    # -- events -------------------------------------------------------------------------
    def emit(self, event_type: str, obj: JsonObject, previous: JsonObject | None = None) -> JsonObject | None:
        """Record an event with a snapshot of ``obj`` and send it to matching endpoints."""
        if context.silent.get():
            return None
        endpoints = self.delivery.matching_endpoints(event_type)
        event = catalog.event(
            self.store.new_id("evt"),
            self.store.now(),
            event_type,
            copy.deepcopy(obj),
            copy.deepcopy(previous) if previous is not None else None,
            context.request_id.get(),
            context.idempotency_key.get(),
            len(endpoints),
        )
        self.store.add(event)
        if endpoints:
            self.delivery.schedule(copy.deepcopy(event), endpoints)
        return event

    def create(self, obj: JsonObject, event_type: str | None = None) -> JsonObject:
        self.store.add(obj)
        if event_type:
            self.emit(event_type, obj)
        return obj

    def update(self, obj: JsonObject, changes: dict[str, Any], event_type: str | None = None) -> JsonObject:
        """Apply ``changes`` and record ``previous_attributes`` for the keys that really changed.
        Pass fresh values (not the object's own nested dicts mutated in place)."""
        previous: JsonObject = {}
        for key, value in changes.items():
            if obj.get(key) != value:
                previous[key] = copy.deepcopy(obj.get(key))
                obj[key] = value
        if previous:
            self.store.touch()
            if event_type:
                self.emit(event_type, obj, previous)
        return previous

    # -- lifecycle ----------------------------------------------------------------------
    def reset(self) -> None:
        self.store.reset()
        self.faults.clear()
        self.idempotency.reset()
        self.delivery.reset()
        self.stats.reset()
        for name, value in self.initial_config.as_dict().items():
            setattr(self.config, name, value)
        self.persist_soon()

    def persist_soon(self) -> None:
        """Debounced save to ``data_dir``; the file write happens off the event loop."""
        if self.data_dir is None or self._save_handle is not None:
            return
        self._save_handle = asyncio.get_running_loop().call_later(0.2, self._save)

    def _save(self) -> None:
        self._save_handle = None
        if self.data_dir is None or self.store.version == self._saved_version:
            return
        self._saved_version = self.store.version
        payload = self.store.to_json()
        directory = self.data_dir
        task = asyncio.get_running_loop().run_in_executor(None, write_state_file, directory, payload)
        task.add_done_callback(_log_save_failure)

    async def close(self) -> None:
        if self.data_dir is not None and self.store.version != self._saved_version:
            await asyncio.get_running_loop().run_in_executor(
                None, write_state_file, self.data_dir, self.store.to_json()
            )
        await self.delivery.close()


def _log_save_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("saving state failed: %s", future.exception())
