"""Run the sandbox as a subprocess from any test suite or dev runner.

    with SandboxProcess.start() as sandbox:
        client = stripe.StripeClient(sandbox.api_key, base_addresses={"api": sandbox.base_url})

Standard library only (urllib for the control API), so importing it costs nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from stripe_sandbox import DEFAULT_API_KEY


class SandboxProcess:
    def __init__(self, process: subprocess.Popen[bytes], port: int, workdir: Path, api_key: str) -> None:
        self.process = process
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.api_key = api_key
        self.workdir = workdir
        self.log_path = workdir / "sandbox.log"

    @classmethod
    def start(
        cls,
        *,
        retry_time_scale: float = 0.001,
        delivery_timeout: float = 2.0,
        data_dir: Path | None = None,
        api_key: str = DEFAULT_API_KEY,
        startup_timeout: float = 15.0,
        extra_args: list[str] | None = None,
        port: int = 0,
        workdir: Path | None = None,
    ) -> SandboxProcess:
        """Start on a free 127.0.0.1 port (``--port 0``) and wait until it is healthy.
        Retries are compressed by default (``retry_time_scale=0.001``) so tests can watch them.
        `make run` (devtools' devstack) gives a fixed ``port`` and a ``workdir`` under var/ for the log."""
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="stripe-sandbox-"))
        workdir.mkdir(parents=True, exist_ok=True)
        ready_file = workdir / "port"
        ready_file.unlink(missing_ok=True)  # a previous run's would name a port before this one listens
        args = [
            sys.executable,
            "-m",
            "stripe_sandbox",
            "--port",
            str(port),
            "--ready-file",
            str(ready_file),
            "--retry-time-scale",
            str(retry_time_scale),
            "--delivery-timeout",
            str(delivery_timeout),
            "--api-key",
            api_key,
        ]
        if data_dir is not None:
            args += ["--data-dir", str(data_dir)]
        args += extra_args or []
        log = (workdir / "sandbox.log").open("wb")
        package_root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)  # noqa: S603
        log.close()
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"sandbox exited early: {(workdir / 'sandbox.log').read_text()}")
            if ready_file.exists():
                sandbox = cls(process, int(ready_file.read_text()), workdir, api_key)
                if sandbox.healthy():
                    return sandbox
            time.sleep(0.05)
        process.kill()
        raise RuntimeError("sandbox did not become healthy in time")

    # -- control API ----------------------------------------------------------------------
    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float = 30) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return json.loads(response.read() or b"null")

    def healthy(self) -> bool:
        try:
            return bool(self._call("GET", "/_sandbox/health")["status"] == "ok")
        except OSError:
            return False

    def reset(self) -> None:
        self._call("POST", "/_sandbox/reset")

    def configure(self, **switches: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/_sandbox/config", switches)
        return result

    def set_fault(
        self,
        path_prefix: str | list[str],
        *,
        method: str | None = None,
        status: int | None = None,
        count: int | None = None,
        rate: float | None = None,
        retry_after: int | None = None,
        delay_ms: int = 0,
        after_apply: bool = False,
        should_retry: bool | None = None,
        duration_s: float | None = None,
        start_after: int | None = None,
    ) -> int:
        """One fault rule (see docs/sandbox.md): e.g. ``set_fault("/v1/subscriptions", method="GET",
        status=429, retry_after=1, duration_s=3)`` answers 429 to every subscription listing for 3 s;
        ``start_after=5`` lets the first five matching requests through."""
        spec: dict[str, Any] = {
            "path_prefix": path_prefix,
            "method": method,
            "status": status,
            "count": count,
            "rate": rate,
            "retry_after": retry_after,
            "delay_ms": delay_ms,
            "after_apply": after_apply,
            "should_retry": should_retry,
            "duration_s": duration_s,
            "start_after": start_after,
        }
        result = self._call("POST", "/_sandbox/faults", {k: v for k, v in spec.items() if v is not None})
        return int(result["id"])

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sandbox/faults")

    def advance_clock(self, seconds: int | None = None, *, to: int | None = None) -> dict[str, Any]:
        body: dict[str, int | None] = {"to": to} if to is not None else {"seconds": seconds}
        result: dict[str, Any] = self._call("POST", "/_sandbox/clock/advance", body)
        return result

    def now(self) -> int:
        return int(self._call("GET", "/_sandbox/clock")["now"])

    def deliveries(self, **filters: str) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={v}" for k, v in filters.items())
        result: list[dict[str, Any]] = self._call("GET", "/_sandbox/deliveries" + (f"?{query}" if query else ""))[
            "deliveries"
        ]
        return result

    def redeliver(self, event_id: str, endpoint_id: str | None = None) -> list[int]:
        body = {"endpoint_id": endpoint_id} if endpoint_id else {}
        return list(self._call("POST", f"/_sandbox/events/{event_id}/redeliver", body)["scheduled"])

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_sandbox/faults")["faults"]
        return result

    def request_stats(self) -> dict[str, Any]:
        """``{"total", "by_route": {"GET /v1/subscriptions": n}, "faulted": {"429": n}, "since"}``."""
        result: dict[str, Any] = self._call("GET", "/_sandbox/requests")
        return result

    def reset_request_stats(self) -> None:
        self._call("DELETE", "/_sandbox/requests")

    # -- chaos ----------------------------------------------------------------------------
    def drop_deliveries(self, count: int = 1, *, event_type: str = "*", endpoint_id: str | None = None) -> int:
        """Drop the next ``count`` webhook deliveries of matching events; the events stay listed."""
        body: dict[str, Any] = {"count": count, "event_type": event_type}
        if endpoint_id is not None:
            body["endpoint_id"] = endpoint_id
        return int(self._call("POST", "/_sandbox/chaos/drop", body)["id"])

    # -- bulk creation (no events) --------------------------------------------------------
    def bulk_subscriptions(self, count: int, **options: Any) -> dict[str, Any]:
        """``count`` customers with one subscription each; answers ``{"price", "subscriptions",
        "customers", "users"}`` (parallel lists). Options: ``price`` (else a new one of
        ``unit_amount``/``currency``/``interval``), ``metadata`` (e.g. ``{"project": "alpha"}``),
        ``user_prefix``, ``user_key`` (default ``user_id``), ``start``, ``status``, ``quantity``,
        ``cancel_at_period_end``, ``trial_days``, ``backdate_days``."""
        result: dict[str, Any] = self._call(
            "POST", "/_sandbox/bulk/subscriptions", {"count": count, **options}, timeout=600
        )
        return result

    def bulk_payments(self, count: int, **options: Any) -> dict[str, Any]:
        """``count`` one-time payment intents (with a charge each when succeeded); answers
        ``{"payment_intents", "charges", "customers", "users"}``. Options: ``amount``, ``currency``,
        ``metadata``, ``user_prefix``, ``user_key``, ``start``, ``status``, ``customers``,
        ``description``, ``backdate_days``."""
        result: dict[str, Any] = self._call("POST", "/_sandbox/bulk/payments", {"count": count, **options}, timeout=600)
        return result

    # -- silent changes (no event, no webhook) --------------------------------------------
    def silent(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """``silent("subscriptions/sub_x/cancel")`` -> ``POST /_sandbox/silent/subscriptions/sub_x/cancel``."""
        return self._call("POST", f"/_sandbox/silent/{path}", body or {})

    def silent_cancel(self, subscription_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.silent(f"subscriptions/{subscription_id}/cancel")
        return result

    def silent_reprice(
        self,
        subscription_id: str,
        price_id: str | None = None,
        *,
        item_id: str | None = None,
        quantity: int | None = None,
    ) -> dict[str, Any]:
        body = {k: v for k, v in {"price": price_id, "item": item_id, "quantity": quantity}.items() if v is not None}
        result: dict[str, Any] = self.silent(f"subscriptions/{subscription_id}/price", body)
        return result

    def silent_move_period_end(
        self, subscription_id: str, current_period_end: int, *, start: int | None = None, item_id: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"current_period_end": current_period_end}
        if start is not None:
            body["current_period_start"] = start
        if item_id is not None:
            body["item"] = item_id
        result: dict[str, Any] = self.silent(f"subscriptions/{subscription_id}/period_end", body)
        return result

    def silent_cancel_at_period_end(self, subscription_id: str, flag: bool = True) -> dict[str, Any]:
        result: dict[str, Any] = self.silent(
            f"subscriptions/{subscription_id}/cancel_at_period_end", {"cancel_at_period_end": flag}
        )
        return result

    def silent_refund(self, charge_id: str, amount: int | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.silent(f"charges/{charge_id}/refund", {"amount": amount} if amount else {})
        return result

    def silent_payment_intent(
        self, payment_intent_id: str, *, status: str | None = None, amount: int | None = None
    ) -> dict[str, Any]:
        body = {k: v for k, v in {"status": status, "amount": amount}.items() if v is not None}
        result: dict[str, Any] = self.silent(f"payment_intents/{payment_intent_id}", body)
        return result

    def silent_metadata(self, object_id: str, metadata: dict[str, str] | str) -> dict[str, Any]:
        """Stripe's merge: ``{"user_id": ""}`` removes that key, ``""`` removes all."""
        result: dict[str, Any] = self.silent(f"objects/{object_id}/metadata", {"metadata": metadata})
        return result

    def silent_delete_customer(self, customer_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.silent(f"customers/{customer_id}/delete")
        return result

    def silent_update(self, object_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.silent(f"objects/{object_id}", changes)
        return result

    # -- lifecycle ------------------------------------------------------------------------
    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
