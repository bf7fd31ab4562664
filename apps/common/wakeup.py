"""A debounced wake-up: one broker publish per burst of commits, made off the caller's thread.

A commit's on_commit callback pokes the waker, which only sets a flag. A daemon thread of the process
waits for the flag, lets `debounce_seconds` of further pokes gather, clears the flag, then calls
`publish` once. A poke that lands after the clear sets the flag again and gets a publish of its own,
so every committed row is committed before some publish that the woken task sees (no wake-up is
lost to the debounce). Used by the webhook ledger's drain (apps/webhooks/wakeup.py) and the
notification fulfillment worker (apps/entitlements/notifications/wakeup.py).

`publish` must not raise: each user catches its broker errors, counts and logs them, and relies on
its periodic beat task to pick up what a lost wake-up leaves behind.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable


class DebouncedWaker:
    def __init__(self, *, thread_name: str, publish: Callable[[], None], debounce_seconds: float) -> None:
        self._thread_name = thread_name
        self._publish = publish
        self._debounce_seconds = debounce_seconds
        self._armed = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def poke(self) -> None:
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._start()
        self._armed.set()

    def _start(self) -> None:
        with self._start_lock:
            # After a fork (gunicorn's workers) the parent's thread does not exist in the child.
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            self._armed = threading.Event()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        armed = self._armed
        while True:
            armed.wait()
            time.sleep(self._debounce_seconds)
            armed.clear()  # before the publish: a commit from now on arms the next one
            self._publish()
