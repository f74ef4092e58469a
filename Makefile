# avatarsite: `make run` starts the studio, `make test` runs the suite.
# Both set everything up first; the caller's environment is passed through untouched.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml uv.lock | cksum | cut -d' ' -f1)
UV     := $(VENV)/bin/uv
UV_VERSION := 0.13.9

.PHONY: setup run test lint lock bench clean

# Exact versions with hashes from uv.lock (pyproject.toml keeps the ranges; `make lock` updates
# the lock, and `make lint` fails when the two disagree).
$(STAMP): pyproject.toml uv.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) export --quiet --frozen --extra dev --no-emit-project --format requirements-txt \
		--output-file $(VENV)/requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes \
		-r $(VENV)/requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

setup: $(STAMP)

run: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createcachetable
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py ensure_admin
	$(PY) manage.py run_studio

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(UV) lock --check --offline --quiet
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy jobs avatarsite
	$(VENV)/bin/lint-imports

lock: setup
	$(UV) lock

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) var
