# Two commands for a fresh machine (Python 3.11 + Node): `make demo` and `make test`.
# Each creates .venv and installs what it needs (pip; npm for Azurite into .tools/).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
AZURITE := .tools/node_modules/.bin/azurite
CHECKOV := .tools/checkov/bin/checkov

.PHONY: demo test check lint typecheck bench faults sandbox clean

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

demo: $(STAMP)
	$(PY) -m importer demo

test: $(STAMP) $(AZURITE) $(CHECKOV)
	$(PY) -m pytest

check: lint typecheck test

lint: $(STAMP)
	$(PY) -m ruff check importer armsim function_app.py tests scripts

typecheck: $(STAMP)
	$(PY) -m mypy importer

sandbox: $(STAMP)
	$(PY) -m importer sandbox --port 8780

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
