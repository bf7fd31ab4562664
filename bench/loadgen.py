"""An open-loop (fixed-rate) HTTP load generator: asyncio + aiohttp.

Request i is due at t0 + i/rate whatever happened to the earlier ones, and its latency is measured
from that due time, not from when it was actually sent: a server (or client) stall makes the
requests queued behind it late, and that lateness is counted (no coordinated omission).
The first `warmup` seconds run at the same rate but are not recorded (connection set-up).
Bounded: exactly rate*(warmup+duration) requests, each with a timeout, and an overall deadline.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

# (method, url, headers, body)
Request = tuple[str, str, dict[str, str], bytes | None]


@dataclass(frozen=True)
class OpenLoopResult:
    offered_rps: float
    sent: int
    ok: int
    errors: int
    achieved_rps: float  # completed requests / (last completion - t0)
    max_send_lag_ms: float  # how far the client itself fell behind the schedule
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    def line(self) -> str:
        return (
            f"offered {self.offered_rps:.0f}/s, achieved {self.achieved_rps:.0f}/s, {self.ok} ok, "
            f"{self.errors} errors | p50 {self.p50_ms:.2f} ms, p90 {self.p90_ms:.2f} ms, "
            f"p99 {self.p99_ms:.2f} ms, max {self.max_ms:.2f} ms (client send lag max {self.max_send_lag_ms:.1f} ms)"
        )


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


async def _open_loop(
    make_request: Callable[[int], Request], rate: float, duration: float, warmup: float, timeout: float, expect: int
) -> OpenLoopResult:
    skipped = int(rate * warmup)
    total = skipped + int(rate * duration)
    latencies: list[float] = []
    errors = 0
    last_done = 0.0
    max_lag = 0.0
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=512, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def fire(request: Request, due: float, record: bool) -> None:
            nonlocal errors, last_done
            method, url, headers, body = request
            try:
                async with session.request(method, url, headers=headers, data=body) as response:
                    await response.read()
                    if response.status != expect:
                        errors += record
                        return
            except (aiohttp.ClientError, TimeoutError):
                errors += record
                return
            done = loop.time()
            if not record:
                return
            latencies.append(done - due)
            last_done = max(last_done, done)

        tasks: list[asyncio.Task[None]] = []
        t0 = loop.time() + 0.05
        for i in range(total):
            request = make_request(i)  # built before the due time so it costs no schedule slack
            due = t0 + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if i >= skipped:
                max_lag = max(max_lag, loop.time() - due)
            tasks.append(asyncio.create_task(fire(request, due, i >= skipped)))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=timeout + 5)
    latencies.sort()
    start = t0 + skipped / rate
    span = (last_done - start) if last_done > start else math.nan
    return OpenLoopResult(
        offered_rps=rate,
        sent=total - skipped,
        ok=len(latencies),
        errors=errors,
        achieved_rps=len(latencies) / span,
        max_send_lag_ms=max_lag * 1000,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p90_ms=percentile(latencies, 0.90) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        max_ms=latencies[-1] * 1000 if latencies else math.nan,
    )


def open_loop(
    make_request: Callable[[int], Request],
    *,
    rate: float,
    duration: float,
    warmup: float = 1.0,
    timeout: float = 5.0,
    expect: int = 200,
) -> OpenLoopResult:
    """Sends rate*(warmup+duration) requests at fixed intervals; make_request(i) gives request i."""
    return asyncio.run(_open_loop(make_request, rate, duration, warmup, timeout, expect))
