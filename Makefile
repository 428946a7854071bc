# Two commands for a newcomer (see README.md):
#   make demo   a real notebook login against the bundled provider, then an API call
#   make test   the whole test suite
# Both set up what they need first: a virtualenv in .venv and the provider's npm packages.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: demo test setup clean

setup: $(VENV)/.installed provider/node_modules/.package-lock.json tests/hub/node_modules/.package-lock.json

$(VENV)/.installed: pyproject.toml
	scripts/install-system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test,demo,browser,bench]"
	@touch $@

provider/node_modules/.package-lock.json: provider/package-lock.json provider/package.json
	scripts/install-system-deps
	npm ci --prefix provider --no-audit --no-fund --loglevel=error

# configurable-http-proxy, for the JupyterHub tests (tests/test_hub.py)
tests/hub/node_modules/.package-lock.json: tests/hub/package-lock.json tests/hub/package.json
	scripts/install-system-deps
	npm ci --prefix tests/hub --no-audit --no-fund --loglevel=error

demo: setup
	$(PY) scripts/quickstart.py

test: setup
	scripts/install-system-deps --browser
	$(PY) -m pytest

clean:
	rm -rf $(VENV) provider/node_modules tests/hub/node_modules .tools artifacts .pytest_cache
