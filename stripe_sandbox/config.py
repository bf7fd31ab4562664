"""Run-time switches, settable at start-up (CLI) and at run time (``POST /_sandbox/config``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import invalid


@dataclass
class SandboxConfig:
    # Stripe's webhook retry schedule (minutes to hours) multiplied by this; 0.001 turns
    # "5 minutes" into 0.3 s so a test can watch retries happen.
    retry_time_scale: float = 1.0
    # A webhook attempt that takes longer than this counts as failed, as at Stripe.
    delivery_timeout_s: float = 10.0
    # Chaos: chance that an event is delivered twice to an endpoint.
    duplicate_probability: float = 0.0
    # Chaos: each delivery waits a random 0..N ms first, which shuffles the arrival order.
    shuffle_max_delay_ms: int = 0
    # Chaos: chance that a delivery is dropped: the endpoint never receives it, as when Stripe
    # gives up after its retries, but the event is recorded (Events API) with its pending webhook.
    drop_probability: float = 0.0
    # Dunning: a renewal invoice is attempted this many times, payment_retry_interval_s apart...
    max_payment_attempts: int = 4
    payment_retry_interval_s: int = 3 * 86400
    # ...and after the last failure the subscription becomes this ("unpaid" or "canceled").
    dunning_final_status: str = "unpaid"
    # Webhooks only go to loopback addresses unless this is switched on (no traffic leaves
    # the machine by accident).
    allow_remote_webhooks: bool = False
    # Sign webhooks with the sandbox clock instead of real time: for a receiver whose own clock
    # was moved along with the sandbox's (a test that time-travels both after a clock advance).
    sign_with_sandbox_clock: bool = False

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name: f for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise invalid(f"Unknown config switch: {name}", name)
            current = getattr(self, name)
            if isinstance(current, bool):
                ok = isinstance(value, bool)
            elif isinstance(current, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(current, float):
                ok = isinstance(value, int | float) and not isinstance(value, bool)
                value = float(value)
            else:
                ok = isinstance(value, str)
            if not ok:
                raise invalid(f"Invalid value for {name}: {value!r}", name)
            if name in ("duplicate_probability", "drop_probability") and not 0 <= value <= 1:
                raise invalid(f"{name} must be between 0 and 1", name)
            if name == "dunning_final_status" and value not in ("unpaid", "canceled"):
                raise invalid("dunning_final_status must be 'unpaid' or 'canceled'", name)
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
