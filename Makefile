# Two entry points (see README.md): `make quickstart` and `make test`; both set up first.
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= runs/quickstart

.PHONY: setup quickstart test bench

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
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/bench_sampler.py --quick
