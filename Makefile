# The two set-up commands are `make run` and `make test`; both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements/base.txt requirements/dev.txt | cksum | cut -d' ' -f1)

.PHONY: install run test lint fmt migrate sandbox clean

$(STAMP): requirements/base.txt requirements/dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

## run: the service, a Celery worker and beat (and the Stripe sandbox) on embedded defaults; Ctrl-C stops all
run: install
	$(PY) manage.py devstack

## test: the whole suite (PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set, else SQLite/local memory)
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(PY) manage.py makemigrations --check --dry-run

fmt: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrate: install
	$(PY) manage.py migrate

sandbox: install
	$(PY) -m stripe_sandbox --port $${STRIPE_SANDBOX_PORT:-12111}

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
