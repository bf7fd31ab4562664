"""The fault suite's figures: each test records what it measured; `make proof` renders them.

Tests call record_figure(); figures go, one JSON object a line, to var/proof/figures.jsonl (the
directory is under VAR_DIR, ignored by git). `python -m tests.faults.report` writes
var/proof/report.md from them: one table per test, in the order the tests ran.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
PROOF_DIR = Path(os.environ.get("VAR_DIR", str(ROOT / "var"))) / "proof"
FIGURES = PROOF_DIR / "figures.jsonl"
REPORT = PROOF_DIR / "report.md"


def full_form() -> bool:
    """`make proof` runs the suite in full (FAULTS_FULL=1); `make test` runs its short form."""
    return os.environ.get("FAULTS_FULL", "") == "1"


def record_figure(test: str, name: str, value: Any, unit: str = "") -> None:
    """One measured figure of one test (e.g. "R2 redis down", "5xx during the outage", 0)."""
    PROOF_DIR.mkdir(parents=True, exist_ok=True)
    line = {"test": test, "name": name, "value": value, "unit": unit, "form": "full" if full_form() else "short"}
    with FIGURES.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, default=str) + "\n")


def figures_reset() -> None:
    FIGURES.unlink(missing_ok=True)


def report_render() -> str:
    tests: dict[str, list[dict[str, Any]]] = {}
    lines = FIGURES.read_text(encoding="utf-8").splitlines() if FIGURES.exists() else []
    for line in lines:
        figure = json.loads(line)
        tests.setdefault(figure["test"], []).append(figure)
    out = [
        "# Fault suite report",
        "",
        f"Written {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `make proof` (tests/faults). Every figure below",
        "was measured by the test named above its table, on this machine, against processes the test started.",
        "",
    ]
    if not tests:
        out.append("No figures were recorded: did the fault suite run?")
    for test, figures in tests.items():
        out += [f"## {test}", "", "| figure | value | form |", "|---|---|---|"]
        for figure in figures:
            value = f"{figure['value']} {figure['unit']}".strip()
            out.append(f"| {figure['name']} | {value} | {figure['form']} |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    PROOF_DIR.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(report_render(), encoding="utf-8")
    sys.stdout.write(f"wrote {REPORT.relative_to(ROOT) if REPORT.is_relative_to(ROOT) else REPORT}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
