"""``python -m stripe_sandbox --port 12111``: run the sandbox on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from . import DEFAULT_API_KEY
from .app import create_app
from .config import SandboxConfig
from .sandbox import Sandbox

HOST = "127.0.0.1"  # never all interfaces: its key is public


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stripe_sandbox", description="Offline Stripe sandbox")
    parser.add_argument("--port", type=int, default=12111, help="0 picks a free port (see --ready-file)")
    parser.add_argument("--data-dir", type=Path, default=None, help="persist state to DIR/stripe_sandbox_state.json")
    parser.add_argument("--ready-file", type=Path, default=None, help="write the bound port here once listening")
    parser.add_argument("--retry-time-scale", type=float, default=1.0, help="webhook retry schedule factor")
    parser.add_argument("--delivery-timeout", type=float, default=10.0, help="webhook attempt timeout, seconds")
    parser.add_argument("--allow-remote-webhooks", action="store_true", help="deliver to non-loopback URLs too")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the only secret key accepted (default %(default)s)")
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    config = SandboxConfig(
        retry_time_scale=args.retry_time_scale,
        delivery_timeout_s=args.delivery_timeout,
        allow_remote_webhooks=args.allow_remote_webhooks,
    )
    sb = Sandbox(config, args.data_dir, api_key=args.api_key)
    runner = web.AppRunner(create_app(sb), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, args.port)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    port = server.sockets[0].getsockname()[1]
    sb.public_url = f"http://{HOST}:{port}"
    if args.ready_file is not None:
        tmp = args.ready_file.with_suffix(".tmp")
        tmp.write_text(str(port))
        os.replace(tmp, args.ready_file)
    print(f"stripe sandbox listening on {sb.public_url}", file=sys.stderr, flush=True)  # noqa: T201
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
