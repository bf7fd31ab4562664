"""The offline Stripe sandbox for development tools: stripe_sandbox.testing's launcher, the only one.

It starts `python -m stripe_sandbox` as a process and talks to it over HTTP. apps/ never import
stripe_sandbox; the dev-only paths that start a sandbox (devstack, `smoke_checkout --in-process`)
come through here.
"""

from __future__ import annotations

from pathlib import Path

from stripe_sandbox.testing import SandboxProcess

__all__ = ["SandboxProcess", "sandbox_start"]


def sandbox_start(*, port: int, data_dir: Path, retry_time_scale: float = 1.0) -> SandboxProcess:
    """A sandbox on a chosen port with its state, log and ready file in `data_dir`; waits until healthy.

    Real-time webhook retries (scale 1.0) and the CLI's 10 s delivery timeout by default: `make run`
    behaves as Stripe would, where tests compress time.
    """
    return SandboxProcess.start(
        port=port,
        data_dir=data_dir,
        workdir=data_dir,
        retry_time_scale=retry_time_scale,
        delivery_timeout=10.0,
        startup_timeout=20.0,
    )
