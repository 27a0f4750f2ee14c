# Everything a fresh machine needs is installed from here: `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench stress clean

$(STAMP): pyproject.toml examples/qflow_site_example/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/pip install -q -e examples/qflow_site_example
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/qflow demo

test: $(STAMP)
	$(BIN)/ruff check src plugins examples benchmarks
	$(BIN)/python -m pytest -m "not slow"
	$(BIN)/qflow check $(filter-out %.tests.yaml,$(wildcard rulesets/*.yaml))
	$(BIN)/qflow test rulesets/

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

stress: $(STAMP)
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
