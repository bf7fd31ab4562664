"""R6: schemathesis over /api/schema/ with a valid key, against the service as it ships (gunicorn with
docker/gunicorn.conf.py, a private Redis, a private Stripe sandbox holding the demo catalog): no 5xx,
no answer the schema does not declare.

tests/test_schemathesis.py is the thorough run on Django's live server (every check, the coverage
phase); this is its fault-suite form on the shipped server: in `make test` a bounded number of
examples per operation, under FAULTS_FULL=1 (`make proof`) many more and the coverage phase too.
The same checks are excluded, for the reasons given there. Besides st's own verdicts, the server's
/metrics (django-prometheus, merged over gunicorn's workers) count every answer by status, so "0
5xx" is also read from the server's side.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from apps.catalog.demo import demo_catalog_seed
from apps.projects.models import App
from tests.conftest import make_tenant
from tests.faults.conftest import Service
from tests.faults.processes import WebServer
from tests.faults.report import full_form, record_figure
from tests.test_schemathesis import GROUPS, _command, _failures

pytestmark = [
    pytest.mark.faults,
    pytest.mark.requires_postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.e2e,
]

TEST = "R6 schemathesis on the shipped server"
if full_form():
    MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "50"))
    PHASES = "examples,coverage,fuzzing"
else:
    MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "4"))
    PHASES = "examples,fuzzing"
OPERATIONS = 50  # every operation: 48 keyed ones and the webhook's two paths (tests/test_schemathesis.py)
_STATUS_LINE = re.compile(r'^django_http_responses_total_by_status_total\{status="(\d+)"\} ([0-9.e+]+)$', re.M)


def _answers_by_status(web: WebServer) -> dict[str, float]:
    with urllib.request.urlopen(f"{web.base_url}/metrics", timeout=30) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    return {status: float(count) for status, count in _STATUS_LINE.findall(text)}


def test_the_shipped_server_answers_as_its_schema_says(service: Service, tmp_path: Path) -> None:
    tenant = make_tenant("r6faults")
    # Thousands of requests in a minute: the per-key limit would answer 429 to most of them.
    App.objects.filter(pk=tenant.app.pk).update(rate_limit="100000000/min")
    demo_catalog_seed(project=tenant.project)
    web = service.web()
    # Built once before four clients ask for it at the same moment (see tests/test_schemathesis.py).
    with urllib.request.urlopen(f"{web.base_url}/api/schema/", timeout=60) as schema:  # noqa: S310 - loopback
        assert schema.status == 200
    before = _answers_by_status(web)
    started = time.monotonic()
    runs = {
        name: (
            tmp_path / f"{name}.xml",
            subprocess.Popen(  # noqa: S603 - our own venv's st, with arguments we built
                _command(
                    web.base_url,
                    tenant.key,
                    tmp_path / f"{name}.xml",
                    selection,
                    max_examples=MAX_EXAMPLES,
                    phases=PHASES,
                    extra=("--generation-database", "none"),
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=tmp_path,
            ),
        )
        for name, selection in GROUPS.items()
    }
    failures: list[str] = []
    operations = 0
    try:
        for name, (junit, process) in runs.items():
            output, _ = process.communicate(timeout=900)
            assert junit.exists(), output[-4000:]
            found = _failures(junit)
            if found and "=== FAILURES ===" in output:
                found.append(output[output.find("=== FAILURES ===") : output.find("=== SUMMARY ===")])
            failures += found
            if process.returncode != 0 and not found:
                failures.append(f"{name}: st exited {process.returncode}\n{output[-4000:]}")
            operations += sum(1 for _ in ET.parse(junit).getroot().iter("testcase"))  # noqa: S314 - our report
    finally:
        for _, process in runs.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    seconds = time.monotonic() - started
    after = _answers_by_status(web)
    answers = {status: int(after.get(status, 0) - before.get(status, 0)) for status in after}
    answers = {status: count for status, count in sorted(answers.items()) if count}
    server_errors = sum(count for status, count in answers.items() if status.startswith("5"))

    record_figure(TEST, "operations tested", operations)
    record_figure(TEST, "examples per operation (at most), phases", f"{MAX_EXAMPLES}, {PHASES}")
    record_figure(TEST, "requests answered", sum(answers.values()))
    record_figure(TEST, "answers by status", ", ".join(f"{s}: {n}" for s, n in answers.items()))
    record_figure(TEST, "5xx (server's count)", server_errors)
    record_figure(TEST, "failed checks (5xx, undeclared status or body, ...)", len(failures))
    record_figure(TEST, "run time", round(seconds), "s")

    assert failures == [], "\n\n".join(failures)[:20000]
    assert server_errors == 0, answers
    assert operations == OPERATIONS, operations
    # Every operation was really exercised: at least one answer each. Hypothesis decides how many
    # examples it draws (it stops early on small input spaces), so only this lower bound is certain.
    assert sum(answers.values()) >= OPERATIONS, answers
