# The two set-up commands are `make run` and `make test`; both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements/base.txt requirements/sandbox.txt requirements/dev.txt | cksum | cut -d' ' -f1)

.PHONY: install run test proof lint typecheck fmt migrate migration sandbox build up down logs clean

$(STAMP): requirements/base.txt requirements/sandbox.txt requirements/dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

## run: the service, a Celery worker and beat (and the Stripe sandbox) on embedded defaults; Ctrl-C stops all
## (devstack is devtools/'s command: installed outside production only)
run: install
	$(PY) manage.py devstack

# Coverage of apps/ and billing_service/ ([tool.coverage] in pyproject.toml). The whole suite must cover
# 85% of lines and branches; a part of it (make test PYTEST_ARGS="tests/webhooks -x") reports its
# figure without that floor. COV_FAIL_UNDER=0 make test turns the floor off.
COV_FAIL_UNDER ?= $(if $(strip $(PYTEST_ARGS)),0,85)

## test: the whole suite (PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set, else SQLite/local memory)
test: install
	$(PY) -m pytest --cov --cov-report=term-missing:skip-covered --cov-fail-under=$(COV_FAIL_UNDER) $(PYTEST_ARGS)

## proof: the fault suite in full (tests/faults, FAULTS_FULL=1), its figures written to var/proof/report.md
## (needs DATABASE_URL: PostgreSQL; the report is written even when a test fails, and then make fails)
proof: install
	@test -n "$$DATABASE_URL" || { echo "make proof needs DATABASE_URL (PostgreSQL): the fault suite runs on it"; exit 2; }
	$(PY) -c "from tests.faults.report import figures_reset; figures_reset()"
	FAULTS_FULL=1 $(PY) -m pytest tests/faults $(PYTEST_ARGS); status=$$?; $(PY) -m tests.faults.report; exit $$status

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(PY) manage.py makemigrations --check --dry-run

## typecheck: mypy --strict (also part of lint)
typecheck: install
	$(VENV)/bin/mypy .

fmt: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrate: install
	$(PY) manage.py migrate

## migration: new migrations for model changes; `make migration app=webhooks name=add_note` (both optional)
migration: install
	$(PY) manage.py makemigrations $(app) $(if $(name),--name $(name))

sandbox: install
	$(PY) -m stripe_sandbox --port $${STRIPE_SANDBOX_PORT:-12111}

# The production-shaped stack of docker-compose.yml (web, worker, beat, PostgreSQL, Redis); needs a
# SECRET_KEY in the environment or in .env, which docker compose reads too.
## build: the image
build:
	docker compose build

## up: start the stack in the background (builds the image when it changed)
up:
	docker compose up --build --detach

## down: stop the stack; its volumes (the database) are kept
down:
	docker compose down

## logs: follow the stack's logs
logs:
	docker compose logs --follow

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .coverage htmlcov .hypothesis .schemathesis
