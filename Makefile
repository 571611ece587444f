PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test stress os-deps lint typecheck demo bench install clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev,dask,report,remote,tune]'
	touch $@

install: $(VENV)/.installed

# ruff (lint and format), the layer contract (import-linter), mypy.
lint: install
	$(VENV)/bin/ruff check gage tests bench conftest.py
	$(VENV)/bin/ruff format --check gage tests bench conftest.py
	$(VENV)/bin/lint-imports --no-cache

typecheck: install
	$(PY) -m mypy

# OS packages for the suite's real servers (SSH, S3, Slurm, Chromium): see
# scripts/os-deps/README.md.
os-deps:
	@for s in scripts/os-deps/*.sh; do [ -e "$$s" ] || continue; bash "$$s" || exit 1; done

# In file order, the same every time; `make stress` runs random orders
# (pytest-randomly prints each seed; PYTEST_ARGS=--randomly-seed=N here
# repeats one).
PYTEST_ARGS ?= -p no:randomly
test: os-deps lint typecheck
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Before every stop: each topic alone TOPIC_REPEAT times in a row, then the
# whole suite SUITE_REPEAT times in random order; 0 failures or it fails.
TOPIC_REPEAT ?= 2
SUITE_REPEAT ?= 2
TOPICS ?= topics/*.md

stress: os-deps typecheck
	PY=$(PY) TOPIC_REPEAT=$(TOPIC_REPEAT) SUITE_REPEAT=$(SUITE_REPEAT) \
	  TOPICS='$(TOPICS)' sh tests/stress.sh

demo: install
	cd examples/pipeline && PATH=$(CURDIR)/$(VENV)/bin:$$PATH bash run-demo.sh

bench: install
	@status=0; for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || status=1; done; exit $$status

clean:
	rm -rf $(VENV) .gage
