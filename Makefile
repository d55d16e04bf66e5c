# Two entry points (see README.md): `make quickstart` and `make check` (the whole suite, what CI
# runs); `make test` is the fast loop (everything not marked `slow`). All set up first.
# The suite runs on two pytest-xdist workers, a test file per worker (`--dist loadfile`), so a
# file's module- and session-scoped fixtures are built once.
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= runs/quickstart

PYTEST := $(PY) -m pytest -q -n 2 --dist loadfile

.PHONY: setup quickstart test check bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0   # the CPU build; a bare `torch` would pull the CUDA one
	$(PY) -m pip install -q -e ".[test]"
	touch $@

quickstart: setup
	$(VENV)/bin/featgeom run quickstart --preset small --out $(OUT)

test: setup
	$(PYTEST) -m "not slow"

check: setup
	$(PYTEST)

bench: setup
	$(PY) benchmarks/bench_sampler.py --quick
