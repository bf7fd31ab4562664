"""A minimal page layout; everything interpolated goes through ``escape``."""

from __future__ import annotations

from html import escape

from aiohttp import web


def money(amount: int, currency: str) -> str:
    # Two-decimal currencies only; the sandbox shows minor units faithfully either way.
    return f"{amount // 100}.{amount % 100:02d} {currency.upper()}"


def page(title: str, body: str, status: int = 200) -> web.Response:
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} - Stripe sandbox</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}}.error{{color:#b00}}
.banner{{background:#ffd;padding:.5em;border:1px solid #cc8}}</style></head>
<body><p class="banner">Offline Stripe sandbox - test mode, no real money moves.</p>
<h1>{escape(title)}</h1>
{body}
</body></html>"""
    return web.Response(status=status, text=document, content_type="text/html")


__all__ = ["escape", "money", "page"]
