PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test stress typecheck demo bench install clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev,dask]'
	touch $@

install: $(VENV)/.installed

typecheck: install
	$(PY) -m mypy

# In random order (pytest-randomly): the seed is printed first, and
# PYTEST_ARGS=--randomly-seed=N repeats an order (-p no:randomly: file order).
test: typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

# Before every stop: each topic alone TOPIC_REPEAT times in a row, then the
# whole suite SUITE_REPEAT times in random order; 0 failures or it fails.
TOPIC_REPEAT ?= 2
SUITE_REPEAT ?= 2
TOPICS ?= topics/*.md

stress: typecheck
	PY=$(PY) TOPIC_REPEAT=$(TOPIC_REPEAT) SUITE_REPEAT=$(SUITE_REPEAT) \
	  TOPICS='$(TOPICS)' sh tests/stress.sh

demo: install
	cd examples/pipeline && PATH=$(CURDIR)/$(VENV)/bin:$$PATH bash run-demo.sh

bench: install
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .gage
