"""Throughput of the Stripe sandbox: retrieve and list-of-100 requests per second.

Starts the sandbox as a subprocess on 127.0.0.1, seeds 150 customers, then drives a bounded
load (REQUESTS requests over CONCURRENCY keep-alive connections) from this second process
and prints req/s with p50/p99 latencies.

    .venv/bin/python bench/sandbox_throughput.py [--requests 4000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stripe_sandbox import DEFAULT_API_KEY
from stripe_sandbox.testing import SandboxProcess

AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}  # the sandbox accepts only its own key


async def seed(session: aiohttp.ClientSession, base: str, count: int) -> list[str]:
    ids = []
    for i in range(count):
        async with session.post(f"{base}/v1/customers", data={"email": f"c{i}@example.com"}, headers=AUTH) as r:
            ids.append((await r.json())["id"])
    return ids


async def run_load(base: str, total: int, concurrency: int) -> tuple[list[float], float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        ids = await seed(session, base, 150)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(total):
            queue.put_nowait(n)
        latencies: list[float] = []

        async def worker() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                # Alternate a retrieve with a full page of 100 customers.
                url = f"{base}/v1/customers/{ids[n % len(ids)]}" if n % 2 else f"{base}/v1/customers?limit=100"
                started = time.perf_counter()
                async with session.get(url, headers=AUTH) as response:
                    await response.read()
                    assert response.status == 200, response.status
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with SandboxProcess.start() as sandbox:
        latencies, elapsed = asyncio.run(run_load(sandbox.base_url, args.requests, args.concurrency))
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(f"requests: {len(latencies)} (half GET /v1/customers/{{id}}, half GET /v1/customers?limit=100)")
    print(f"throughput: {len(latencies) / elapsed:.0f} req/s over {elapsed:.2f}s, concurrency {args.concurrency}")
    print(f"latency p50: {statistics.median(latencies) * 1000:.1f} ms, p99: {p99 * 1000:.1f} ms")
    command = (
        f".venv/bin/python bench/sandbox_throughput.py --requests {args.requests} --concurrency {args.concurrency}"
    )
    print(f"reproduce: {command}")


if __name__ == "__main__":
    main()
