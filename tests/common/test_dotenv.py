"""The optional .env file: its strict format, the environment's precedence, and its reading at start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from billing_service.dotenv import dotenv_load, dotenv_parse

ROOT = Path(__file__).resolve().parents[2]


def test_it_reads_names_values_quotes_comments_and_export() -> None:
    text = "\n".join(
        [
            "# a comment",
            "",
            "PLAIN=value",
            "  SPACED = some value   # a comment",
            "HASH_IN_WORD=pass#word",
            'DOUBLE="with # and  spaces"  # comment',
            "SINGLE='${NOT_INTERPOLATED}'",
            "export EXPORTED=1",
            "EMPTY=",
            "EMPTY_WITH_COMMENT= # nothing",
            "URL=postgres://u:p@h:5432/db?x=1",
        ]
    )
    assert dotenv_parse(text) == {
        "PLAIN": "value",
        "SPACED": "some value",
        "HASH_IN_WORD": "pass#word",
        "DOUBLE": "with # and  spaces",
        "SINGLE": "${NOT_INTERPOLATED}",
        "EXPORTED": "1",
        "EMPTY": "",
        "EMPTY_WITH_COMMENT": "",
        "URL": "postgres://u:p@h:5432/db?x=1",
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("NO_EQUALS_SIGN", r"\.env:2: expected NAME=value"),
        ("1BAD=x", r"\.env:2: '1BAD' is not a variable name"),
        ("BAD-NAME=x", r"\.env:2: 'BAD-NAME' is not a variable name"),
        ('OPEN="never closed', r"\.env:2: the \" quote is not closed"),
        ("TRAILING='a' b", r"\.env:2: unexpected text after the closing quote"),
        ("FIRST=again", r"\.env:2: FIRST is set twice"),
    ],
)
def test_a_malformed_line_is_an_error_naming_file_and_line(line: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        dotenv_parse(f"FIRST=1\n{line}\n")


def test_the_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("X_DOTENV_SET=from-file\nX_DOTENV_NEW=from-file\nX_DOTENV_EMPTY=from-file\n")
    monkeypatch.setenv("X_DOTENV_SET", "from-environment")
    monkeypatch.setenv("X_DOTENV_EMPTY", "")
    monkeypatch.delenv("X_DOTENV_NEW", raising=False)
    try:
        assert dotenv_load(env_file) == ["X_DOTENV_NEW"]
        assert os.environ["X_DOTENV_SET"] == "from-environment"
        assert os.environ["X_DOTENV_NEW"] == "from-file"
        assert os.environ["X_DOTENV_EMPTY"] == ""  # set, even empty, is the environment's choice
    finally:
        os.environ.pop("X_DOTENV_NEW", None)


def test_a_missing_file_is_not_an_error(tmp_path: Path) -> None:
    assert dotenv_load(tmp_path / ".env") == []


def _settings_in_a_copy(tmp_path: Path, env_file: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Loads billing_service.settings from a copy whose project root is tmp_path, with that .env there.

    A copy, so that the test never writes the real project root's .env (a developer's own).
    """
    shutil.copytree(
        ROOT / "billing_service", tmp_path / "billing_service", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / ".env").write_text(env_file)
    bare = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(tmp_path), "VAR_DIR": str(tmp_path / "var")}
    code = (
        "import json, billing_service.settings as s; "
        "print(json.dumps([s.DJANGO_ENV, s.API_RATE_LIMIT, s.LOG_LEVEL, s.STRIPE_WEBHOOK_SECRETS]))"
    )
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**bare, **env},  # none of the caller's settings
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_settings_read_the_project_roots_env_file_at_start(tmp_path: Path) -> None:
    env_file = "ENVIRONMENT=development\nAPI_RATE_LIMIT=7/min\nLOG_LEVEL=DEBUG\nSTRIPE_WEBHOOK_SECRET=whsec_file\n"
    result = _settings_in_a_copy(tmp_path, env_file, {"LOG_LEVEL": "WARNING"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["development", "7/min", "WARNING", ["whsec_file"]]


def test_a_malformed_env_file_stops_the_process_at_start(tmp_path: Path) -> None:
    result = _settings_in_a_copy(tmp_path, "API_RATE_LIMIT=7/min\nthis is not a setting\n", {})
    assert result.returncode != 0
    assert f"{tmp_path / '.env'}:2: expected NAME=value" in result.stderr


def test_the_test_environment_ignores_the_env_file(tmp_path: Path) -> None:
    result = _settings_in_a_copy(tmp_path, "API_RATE_LIMIT=7/min\n", {"DJANGO_ENV": "test"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[:2] == ["test", "1200/min"]
