# Set-up is two commands: `make demo` and `make test`. Both create .venv (Python 3.10)
# from the pinned requirements.lock when it is missing or stale, and are no-ops otherwise.
SHELL := /bin/bash
VENV := .venv
# PYTHON=... from the user wins; else the first python3.10 that actually runs; else pyenv's 3.10.
PYTHON ?= $(shell if python3.10 -c 1 >/dev/null 2>&1; then echo python3.10; \
	elif command -v pyenv >/dev/null 2>&1 && ls -d "$$(pyenv root)"/versions/3.10*/bin/python >/dev/null 2>&1; then \
	ls -d "$$(pyenv root)"/versions/3.10*/bin/python | sort -V | tail -1; \
	else echo python3.10; fi)
STAMP := $(VENV)/.installed
BIN := $(VENV)/bin
PYTEST_ARGS ?=
CASE ?=

.PHONY: venv demo test bench clean
venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check pip==24.2
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kt-pipelines demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(if $(CASE),--case $(CASE))

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
