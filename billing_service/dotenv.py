"""The optional `.env` file in the project root, read once when the settings load.

A small strict parser instead of a library: the format we accept is a handful of rules, and every
line that does not follow them stops the process with the file and line number instead of being
skipped or half-read. The rules (a subset of what Docker Compose reads, so one file serves both):

    # a comment line; blank lines are ignored
    NAME=value                 value up to an inline " #comment", surrounding spaces dropped
    NAME="value with # and spaces"   or 'single quoted': taken literally, no escapes
    export NAME=value          the shell's `export` prefix is allowed

Values are never interpolated (`${OTHER}` stays as written). A variable already in the environment
wins over the file, so `PORT=8001 make run` still works with PORT in `.env`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _value(raw: str, where: str) -> str:
    raw = raw.strip()
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = raw.find(quote, 1)
        if end == -1:
            raise ImproperlyConfigured(f"{where}: the {quote} quote is not closed on this line")
        rest = raw[end + 1 :].strip()
        if rest and not rest.startswith("#"):
            raise ImproperlyConfigured(f"{where}: unexpected text after the closing quote: {rest!r}")
        return raw[1:end]
    if raw[:1] == "#":  # NAME= #comment: an empty value
        return ""
    # Compose's rule: " #" starts a comment, a "#" inside a word (a password, a URL fragment) does not.
    return re.split(r"\s#", raw, maxsplit=1)[0].strip()


def dotenv_parse(text: str, source: str = ".env") -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{source}:{number}"
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        name, equals, raw = stripped.partition("=")
        name = name.strip()
        if not equals:
            raise ImproperlyConfigured(f"{where}: expected NAME=value, got {line.strip()!r}")
        if not _NAME.fullmatch(name):
            raise ImproperlyConfigured(f"{where}: {name!r} is not a variable name (letters, digits, underscores)")
        if name in values:
            raise ImproperlyConfigured(f"{where}: {name} is set twice in the file")
        values[name] = _value(raw, where)
    return values


def dotenv_load(path: Path) -> list[str]:
    """Puts the file's variables that the environment does not already have into os.environ.

    Returns the names it set. A missing file is normal (the file is optional); an unreadable or
    malformed one is an error.
    """
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImproperlyConfigured(f"{path}: cannot be read: {exc}") from None
    applied = []
    for name, value in dotenv_parse(text, str(path)).items():
        if name not in os.environ:
            os.environ[name] = value
            applied.append(name)
    return applied
