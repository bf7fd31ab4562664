#!/usr/bin/env bash
# One image, several roles:
#   web (default)  wait for the DB, migrate, install the beat schedule, then gunicorn
#   worker         wait for the DB and for migrations, then a Celery worker (metrics on WORKER_METRICS_PORT)
#   beat           wait for the DB and for migrations, then Celery beat (DatabaseScheduler)
#   healthcheck    the image's HEALTHCHECK: GET /live (or the path given) on the web role; a no-op elsewhere
#   manage.py ...  a management command, e.g. `manage.py rotate_key --project p --app a`
#   anything else  run as given, e.g. `python manage.py shell` or `bash`
# Extra arguments after web/worker/beat are appended to gunicorn/celery (`worker --concurrency 8`).
# Only the web role migrates, so that three containers never race each other's migrations.
set -euo pipefail

APP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$APP_DIR"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-billing_service.settings}"

ROLE_FILE="${TMPDIR:-/tmp}/billing-role"

say() { printf 'entrypoint[%s]: %s\n' "${ROLE:-?}" "$*" >&2; }

# Exit 0: connected. Exit 3: not reachable yet (retry). Anything else (bad settings): give up at once.
db_probe() {
    python - <<'PY'
import sys

import django

django.setup()
from django.db import OperationalError, connection

try:
    connection.ensure_connection()
except OperationalError as exc:
    print(f"database not reachable yet: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}", file=sys.stderr)
    sys.exit(3)
PY
}

wait_for_db() {
    local limit="${DB_WAIT_SECONDS:-60}" deadline rc
    deadline=$((SECONDS + limit))
    while true; do
        rc=0
        db_probe || rc=$?
        if [ "$rc" -eq 0 ]; then
            return 0
        fi
        if [ "$rc" -ne 3 ]; then
            say "settings or database check failed (exit $rc); not retrying"
            exit "$rc"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "database still unreachable after ${limit}s; giving up"
            exit 1
        fi
        sleep 2
    done
}

# Worker and beat start only once the web role has applied every migration.
wait_for_migrations() {
    local limit="${MIGRATION_WAIT_SECONDS:-300}" deadline
    deadline=$((SECONDS + limit))
    until python manage.py migrate --check --noinput >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "migrations still unapplied after ${limit}s (is the web role running?); giving up"
            exit 1
        fi
        say "waiting for migrations to be applied by the web role"
        sleep 5
    done
}

# Every Django process of the container writes its metric files here (gunicorn's workers; the Celery
# worker and its pool processes; a `manage.py` command exec'd into the container, whose counters the
# web's /metrics then shows too). apps/common/metrics.py and the worker's exporter
# (apps/common/worker_metrics.py) merge them. In the container's own /tmp: the settings' default,
# $VAR_DIR/prometheus-multiproc, may be a volume that outlives the container, or read-only.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-${TMPDIR:-/tmp}/prometheus-multiproc}"

# Files left by a previous run (or by the database probes a role runs first) would be counted again.
prepare_multiproc_dir() {
    rm -rf "$PROMETHEUS_MULTIPROC_DIR"
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
}

ROLE="${1:-web}"
if [ "$#" -gt 0 ]; then
    shift
fi

case "$ROLE" in
    web)
        echo web >"$ROLE_FILE"
        wait_for_db
        case "${MIGRATE_ON_START:-true}" in
            1 | true | yes | on)
                say "migrate"
                python manage.py migrate --noinput
                say "install_beat_schedule"
                python manage.py install_beat_schedule
                python manage.py install_roles
                ;;
            *)
                say "MIGRATE_ON_START=${MIGRATE_ON_START}: skipping migrate and install_beat_schedule"
                ;;
        esac
        prepare_multiproc_dir
        exec gunicorn --config docker/gunicorn.conf.py "$@"
        ;;
    worker)
        echo worker >"$ROLE_FILE"
        wait_for_db
        wait_for_migrations
        # Its exporter listens on WORKER_METRICS_ADDR:WORKER_METRICS_PORT (settings; compose publishes it).
        prepare_multiproc_dir
        exec celery -A billing_service worker -l INFO "$@"
        ;;
    beat)
        echo beat >"$ROLE_FILE"
        wait_for_db
        wait_for_migrations
        prepare_multiproc_dir
        exec celery -A billing_service beat -l INFO \
            --scheduler django_celery_beat.schedulers:DatabaseScheduler "$@"
        ;;
    healthcheck)
        # Only the web role serves HTTP; worker and beat are watched through their metrics
        # (billing_worker_heartbeat_timestamp_seconds, billing_scheduler_task_last_run_timestamp_seconds).
        if [ "$(cat "$ROLE_FILE" 2>/dev/null || true)" != "web" ]; then
            exit 0
        fi
        exec python - "${1:-/live}" <<'PY'
import os
import sys
import urllib.request

path = sys.argv[1]
# Django answers 400 to a Host outside ALLOWED_HOSTS, so the probe names an allowed one.
hosts = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
host = next((h.lstrip(".") for h in hosts if "*" not in h), "localhost")
port = os.environ.get("PORT", "").strip() or "8000"
request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
try:
    with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310 - a fixed local URL
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:
    print(f"healthcheck {path}: {exc}", file=sys.stderr)
    sys.exit(1)
PY
        ;;
    manage.py | manage)
        exec python manage.py "$@"
        ;;
    *)
        exec "$ROLE" "$@"
        ;;
esac
