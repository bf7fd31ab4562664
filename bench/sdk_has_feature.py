"""The Python SDK's has_feature() on a warm cache, in process: the cost a micro-app pays per check.

A BillingClient (clients/python) is warmed for --users users (each with --features entitlements, one
of them ending in the future and one already ended, so that the windows are really compared) through
one fetch per user from an in-process httpx.MockTransport; then --calls has_feature() calls cycle over
the users and over a present and an absent feature. Any request during the timed rounds fails the run
(the cache must answer alone). Each round's figure is its wall time divided by its calls; the script
prints the min/median/max of --rounds rounds. Target: <= 50 µs per call.

    .venv/bin/python bench/sdk_has_feature.py [--calls 200000] [--rounds 3] [--users 1000] [--features 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from billing_client import BillingClient

COMMAND = ".venv/bin/python bench/sdk_has_feature.py"


def iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def _entitlements(features: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    rows = [
        {
            "feature_code": f"feature_{n}",
            "active": True,
            "source": "subscription",
            "source_id": n,
            "valid_from": iso(now - timedelta(days=30)),
            "valid_to": iso(now + timedelta(days=n + 1)) if n % 2 else None,
        }
        for n in range(features)
    ]
    # An ended window of the first feature: has_feature() must look past it.
    rows.append({**rows[0], "source": "purchase", "valid_to": iso(now - timedelta(days=1))})
    return rows


def warm_client(users: int, features: int) -> tuple[BillingClient, list[httpx.Request]]:
    requests: list[httpx.Request] = []
    body = {"entitlements": _entitlements(features), "version": 1}

    def service(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=body)

    client = BillingClient(
        "http://billing.bench", "bk_bench", 1, cache_ttl=3600, transport=httpx.MockTransport(service)
    )
    for user in range(users):
        client.has_feature(f"user_{user}", "feature_0")
    return client, requests


def one_round(client: BillingClient, calls: int, users: int) -> tuple[float, int]:
    """Seconds per call, and how many calls answered True (a check that the answers are real)."""
    user_ids = [f"user_{n % users}" for n in range(calls)]
    codes = ["feature_0" if n % 2 else "absent" for n in range(calls)]
    has_feature = client.has_feature
    gc.disable()
    try:
        started = time.perf_counter()
        granted = sum(has_feature(user_id, code) for user_id, code in zip(user_ids, codes, strict=True))
        elapsed = time.perf_counter() - started
    finally:
        gc.enable()
    return elapsed / calls, granted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--features", type=int, default=5)
    args = parser.parse_args()

    client, requests = warm_client(args.users, args.features)
    warm_requests = len(requests)
    per_call = []
    for round_number in range(1, args.rounds + 1):
        seconds, granted = one_round(client, args.calls, args.users)
        if granted != args.calls // 2:
            sys.exit(f"round {round_number}: {granted} of {args.calls} calls said True, expected half")
        per_call.append(seconds * 1e6)
        print(f"round {round_number}: {per_call[-1]:.2f} µs per call ({args.calls} calls)", flush=True)
    client.close()
    if len(requests) != warm_requests:
        sys.exit(f"{len(requests) - warm_requests} requests during the timed rounds: the cache did not answer")

    print(
        f"has_feature on a warm cache ({args.users} users, {args.features + 1} entitlements each): "
        f"min {min(per_call):.2f} / median {statistics.median(per_call):.2f} / max {max(per_call):.2f} µs per call "
        f"over {args.rounds} rounds of {args.calls}; target <= 50 µs; {warm_requests} requests to warm, 0 after"
    )
    print(
        f"reproduce: {COMMAND} --calls {args.calls} --rounds {args.rounds} --users {args.users} "
        f"--features {args.features}"
    )


if __name__ == "__main__":
    main()
