"""Starts the offline Stripe sandbox as a process for `make run` and `smoke_checkout --in-process`.

It runs `python -m stripe_sandbox` and talks to it over HTTP only: apps/ never import the sandbox.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# dj-stripe accepts only keys with 24+ characters after the mode prefix.
SANDBOX_SECRET_KEY = "sk_test_sandbox0000000000000000000000"  # noqa: S105 - the only key the sandbox accepts (its default)


def sandbox_start(*, port: int, data_dir: Path | None, retry_time_scale: float = 1.0) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "stripe_sandbox", "--port", str(port), "--retry-time-scale", str(retry_time_scale)]
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        argv += ["--data-dir", str(data_dir)]
    return subprocess.Popen(argv)  # noqa: S603 - our own fixed argv


def sandbox_wait_healthy(base_url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Stripe sandbox exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{base_url}/_sandbox/health", timeout=1) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"the Stripe sandbox did not answer at {base_url} within {timeout:.0f}s")
