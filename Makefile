PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test typecheck demo bench install clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev,dask]'
	touch $@

install: $(VENV)/.installed

typecheck: install
	$(PY) -m mypy

test: typecheck
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: install
	cd examples/pipeline && PATH=$(CURDIR)/$(VENV)/bin:$$PATH bash run-demo.sh

bench: install
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .gage
