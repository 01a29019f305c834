# Two commands for a fresh machine (Python 3.11 + Node): `make demo` and `make test`.
# Each creates .venv and installs what it needs (pip; npm for Azurite into .tools/).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
AZURITE := .tools/node_modules/.bin/azurite
CHECKOV := .tools/checkov/bin/checkov

.PHONY: demo test check lint typecheck imports bench faults sandbox clean mono

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt \
	  || { echo "make: pip could not install requirements-dev.txt (its error is above)" >&2; exit 1; }
	rm -f $(VENV)/.installed-*; touch $@

$(AZURITE):
	npm install --loglevel=error --no-audit --no-fund --prefix .tools azurite@3 \
	  || { echo "make: npm could not install Azurite into .tools/ (its error is above)" >&2; exit 1; }

$(CHECKOV): requirements-checkov.txt
	$(PYTHON) -m venv .tools/checkov
	.tools/checkov/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt \
	  || { echo "make: pip could not install checkov (requirements-checkov.txt; its error is above)" >&2; exit 1; }
	touch $@

# Mono's C# compiler for tests/expressions (the policy expressions compiled and run offline): installed
# when this runs as root with apt-get (CI, the dev machines); otherwise one line says how, and those
# tests skip (in CI, where the CI variable is set, they fail instead).
MONO_PACKAGES := mono-mcs libmono-system-xml-linq4.0-cil libmono-system-numerics4.0-cil
MONO_APT := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(MONO_PACKAGES)

mono:
	@if command -v mcs >/dev/null 2>&1 && [ -f /usr/lib/mono/4.5/System.Xml.Linq.dll ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing $(MONO_PACKAGES) with apt-get for the policy-expression tests"; \
	  ($(MONO_APT) || (apt-get update -qq && $(MONO_APT))) >/dev/null \
	  || echo "apt-get could not install $(MONO_PACKAGES): the policy-expression tests will skip"; \
	else \
	  echo "mono-mcs is not installed (installing it needs root and apt-get): the policy-expression tests will skip; run: sudo apt-get install -y $(MONO_PACKAGES)"; \
	fi

demo: $(STAMP)
	$(PY) -m importer demo

test: $(STAMP) $(AZURITE) $(CHECKOV) mono
	$(PY) -m pytest

check: lint typecheck imports test

lint: $(STAMP)
	$(PY) -m ruff check importer armsim devhost function_app.py tests scripts

typecheck: $(STAMP)
	$(PY) -m mypy importer devhost

# The layers (.importlinter): also run by tests/test_layers.py, so `make test` and CI enforce them.
imports: $(STAMP)
	$(VENV)/bin/lint-imports --no-logo

sandbox: $(STAMP)
	$(PY) -m importer sandbox --port 8780

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache
