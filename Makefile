# paydesk developer and CI entry points (GNU make). Plain `make` only prints help.
#
# `make test` is the whole CI gate and is what .ci/run executes on a fresh machine:
#   main run   (Python 3.12 + Django 6.1): ruff + mypy, makemigrations --check,
#              pytest on a throwaway PostgreSQL, pytest on SQLite
#   compat run (Python 3.11 + Django 5.2): makemigrations --check,
#              pytest on PostgreSQL, pytest on SQLite
# Any non-zero status fails the build, including pytest's 5 ("no tests collected").

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
# The two pytest runs share SQLite file names in the repo root; never run targets in parallel.
.NOTPARALLEL:
MAKEFLAGS += --no-print-directory

VENV          ?= .venv
VENV_COMPAT   ?= .venv-compat
PY_MAIN       ?= 3.12
PY_COMPAT     ?= 3.11
DJANGO_MAIN   ?= Django>=6.1,<6.2
DJANGO_COMPAT ?= Django>=5.2,<5.3
# Optional explicit interpreters (default: scripts/find-python picks pyenv / pythonX.Y).
PYTHON_MAIN   ?=
PYTHON_COMPAT ?=

MAIN_LABEL    := py3.12 django6.1
COMPAT_LABEL  := py3.11 django5.2

# pytest-xdist workers; the concurrency tests run 50 threads per worker, which is why
# scripts/with-postgres raises max_connections.
XDIST       ?= -n 2
PYTEST_ARGS ?=

LINT_PATHS := $(wildcard src tests example bench)
BENCH_FILES := $(filter-out bench/_%,$(wildcard bench/*.py))

# Same import roots as pytest's `pythonpath = [".", "example"]`.
export PYTHONPATH := $(CURDIR):$(CURDIR)/example$(if $(PYTHONPATH),:$(PYTHONPATH))

banner = @printf '\n== [%s] %s ==\n' '$(1)' '$(2)'

# Screenshots the browser tests (tests/browser) take; gitignored, overwritten by each run.
SCREENSHOTS := $(CURDIR)/test-artifacts/screenshots
screenshots_note = @printf '\n== browser test screenshots: %s ==\n' '$(SCREENSHOTS)'

# $(call migrations_check,VENV) -- an in-memory SQLite database, so no stray file is left.
migrations_check = DATABASE_URL='sqlite://:memory:' $(1)/bin/python -m django makemigrations \
	--check --dry-run --settings=tests.settings

# $(call pytest_postgres,VENV) / $(call pytest_sqlite,VENV)
pytest_cmd = $(1)/bin/python -m pytest -p no:cacheprovider $(XDIST) $(PYTEST_ARGS)
pytest_postgres = scripts/with-postgres $(call pytest_cmd,$(1))
# PostgreSQL-only tests (row locks, concurrent transactions) fail loudly off PostgreSQL,
# so the SQLite run deselects them instead of letting them skip.
pytest_sqlite = env -u DATABASE_URL $(call pytest_cmd,$(1)) -m 'not postgres'

.PHONY: help venv venv-compat lint migrations-check test test-main test-compat test-fast \
	test-browser demo bench screenshots clean

help:
	@echo 'paydesk make targets:'
	@echo '  make demo              virtualenv + migrate + seed demo data, serve http://127.0.0.1:8000'
	@echo '  make test              full CI gate (both Python/Django combos, PostgreSQL + SQLite)'
	@echo '  make test-main         CI gate for Python 3.12 + Django 6.1 only (lint, migrations, pytest)'
	@echo '  make test-compat       CI gate for Python 3.11 + Django 5.2 only (migrations, pytest)'
	@echo '  make test-fast         pytest on SQLite with the main virtualenv (quick developer loop)'
	@echo '  make screenshots       retake docs/images/dashboard-*.png from the seeded demo (Chromium)'
	@echo '  make test-browser      only the browser tests (tests/browser, Chromium), SQLite, main venv'
	@echo '  make lint              ruff check, ruff format --check, mypy'
	@echo '  make migrations-check  fail if models changed without a migration'
	@echo '  make bench             run bench/*.py against a throwaway PostgreSQL'
	@echo '  make venv              .venv: Python 3.12, Django 6.1, paydesk[dev] (editable)'
	@echo '  make venv-compat       .venv-compat: Python 3.11, Django 5.2, paydesk[dev] (editable)'
	@echo '  make clean             remove virtualenvs and caches'
	@echo 'Variables: PYTEST_ARGS="-k refund" XDIST="-n 0" PYTHON_MAIN=/path/to/python3.12 ...'

# --- virtualenvs (stamp files: rebuilt only when pyproject.toml changes) --------------------

venv: $(VENV)/.installed
venv-compat: $(VENV_COMPAT)/.installed

$(VENV)/.installed: pyproject.toml
	scripts/make-venv $(VENV) $(PY_MAIN) '$(DJANGO_MAIN)' $(PYTHON_MAIN)

$(VENV_COMPAT)/.installed: pyproject.toml
	scripts/make-venv $(VENV_COMPAT) $(PY_COMPAT) '$(DJANGO_COMPAT)' $(PYTHON_COMPAT)

# --- individual checks ------------------------------------------------------------------

# Runs all three tools even if one fails, so one run shows every problem; fails if any did.
lint: venv
	@rc=0; \
	echo '+ ruff check $(LINT_PATHS)'; $(VENV)/bin/ruff check $(LINT_PATHS) || rc=1; \
	echo '+ ruff format --check $(LINT_PATHS)'; $(VENV)/bin/ruff format --check $(LINT_PATHS) || rc=1; \
	echo '+ mypy'; $(VENV)/bin/mypy || rc=1; \
	exit $$rc

migrations-check: venv
	$(call migrations_check,$(VENV))

test-fast: venv
	$(call pytest_sqlite,$(VENV))

# The dashboard pictures in README.md and docs/dashboard.md, from a freshly seeded demo.
screenshots: venv
	$(VENV)/bin/python scripts/screenshots

# The browser tests alone (they are also part of every pytest run above), for UI work.
test-browser: venv
	$(call pytest_sqlite,$(VENV)) tests/browser
	$(screenshots_note)

# --- the CI gate --------------------------------------------------------------------------

test: test-main test-compat
	$(screenshots_note)
	@printf '\n== all checks passed: [%s] and [%s] ==\n' '$(MAIN_LABEL)' '$(COMPAT_LABEL)'

test-main: venv
	$(call banner,$(MAIN_LABEL),ruff + mypy)
	@$(MAKE) lint
	$(call banner,$(MAIN_LABEL),makemigrations --check)
	$(call migrations_check,$(VENV))
	$(call banner,$(MAIN_LABEL),pytest on PostgreSQL)
	$(call pytest_postgres,$(VENV))
	$(call banner,$(MAIN_LABEL),pytest on SQLite)
	$(call pytest_sqlite,$(VENV))

test-compat: venv-compat
	$(call banner,$(COMPAT_LABEL),makemigrations --check)
	$(call migrations_check,$(VENV_COMPAT))
	$(call banner,$(COMPAT_LABEL),pytest on PostgreSQL)
	$(call pytest_postgres,$(VENV_COMPAT))
	$(call banner,$(COMPAT_LABEL),pytest on SQLite)
	$(call pytest_sqlite,$(VENV_COMPAT))

# --- demo and benchmarks ------------------------------------------------------------------

demo: venv
	cd example && $(abspath $(VENV))/bin/python manage.py migrate --noinput
	cd example && $(abspath $(VENV))/bin/python manage.py seed_demo
	cd example && exec $(abspath $(VENV))/bin/python manage.py runserver 127.0.0.1:8000

# Every bench/*.py (except _*.py helpers), one after another, on one throwaway cluster.
bench: venv
ifeq ($(BENCH_FILES),)
	@echo 'bench: no bench/*.py files yet; nothing to run'
else
	scripts/with-postgres bash -c 'set -e; for f in "$$@"; do \
		printf "\n== bench: %s ==\n" "$$f"; $(VENV)/bin/python "$$f"; done' bench $(BENCH_FILES)
endif

clean:
	rm -rf $(VENV) $(VENV_COMPAT) .mypy_cache .ruff_cache .pytest_cache .hypothesis \
		build dist src/*.egg-info paydesk-tests*.sqlite3 test-artifacts
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
