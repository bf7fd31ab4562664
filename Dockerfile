# syntax=docker/dockerfile:1
# One image for every role: web (default), worker, beat, or any command (see docker/entrypoint.sh).
#   docker build -t billing-service .
#   docker run --env-file prod.env billing-service            # web: migrate, install beat schedule, gunicorn
#   docker run --env-file prod.env billing-service worker
#   docker run --env-file prod.env billing-service beat
#   docker run --env-file prod.env billing-service manage.py create_project --name "Space HQ" --slug spacehq

# --- build: the dependencies, in a virtualenv copied whole into the runtime stage -------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements/base.txt /tmp/requirements/base.txt
RUN pip install --upgrade pip && pip install -r /tmp/requirements/base.txt

# --- runtime ----------------------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

# PROMETHEUS_MULTIPROC_DIR: every Django process of a container (a role's, or one `docker exec`'d into it)
# writes its metric files in the container's own /tmp; the entrypoint empties it when a role starts.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=billing_service.settings \
    DJANGO_ENV=production \
    PORT=8000 \
    STATIC_ROOT=/app/staticfiles \
    VAR_DIR=/var/lib/billing \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc

RUN groupadd --system --gid 10001 billing \
    && useradd --system --uid 10001 --gid billing --home-dir /var/lib/billing --shell /usr/sbin/nologin billing

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# What production needs only: .dockerignore keeps out the tests, the Stripe sandbox (stripe_sandbox/)
# and the development tools (devtools/), and the build stage installs requirements/base.txt alone
# (no aiohttp, which only the sandbox uses).
COPY . .

# collectstatic runs with the production storage (whitenoise's CompressedManifestStaticFilesStorage),
# so the manifest that production reads at run time is built here. Production settings refuse to load
# without SECRET_KEY and ALLOWED_HOSTS: this step gets throwaway values that never reach the runtime
# environment, and a throwaway VAR_DIR (settings create the embedded broker's folders there when
# CELERY_BROKER_URL is unset), where its metric files go too: a root-owned /tmp/prometheus-multiproc left
# in the image would be one the service's user cannot empty.
RUN mkdir -p static \
    && DJANGO_ENV=production \
       SECRET_KEY=collectstatic-build-step-only-not-a-real-secret-0123456789 \
       ALLOWED_HOSTS=localhost \
       VAR_DIR=/tmp/build-var \
       PROMETHEUS_MULTIPROC_DIR=/tmp/build-var/prometheus-multiproc \
       python manage.py collectstatic --noinput \
    && rm -rf /tmp/build-var \
    && chmod 0755 docker/entrypoint.sh \
    && install -d -o billing -g billing -m 0750 /var/lib/billing

# The code and static files stay owned by root: the service cannot rewrite itself.
USER billing:billing

# 8000: the web role (gunicorn, $PORT). 9808: the worker role's metrics exporter (WORKER_METRICS_PORT;
# set WORKER_METRICS_ADDR=0.0.0.0 for it to be reachable from outside the container).
EXPOSE 8000 9808

# GET /live on the web role (sending a Host from ALLOWED_HOSTS); a no-op for worker and beat.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["/app/docker/entrypoint.sh", "healthcheck"]

ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["web"]
