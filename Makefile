# Everything a fresh machine needs is installed from here: `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench bench-quick stress clean

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

# The figures in the README. The full run takes a while (a million incidents are
# loaded for the tick and the report); `make bench-quick` is the same at a tenth.
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/bench_calendar.py
	$(BIN)/python benchmarks/bench_store.py
	$(BIN)/python benchmarks/bench_tick.py --incidents 1000000 --store both
	$(BIN)/python benchmarks/bench_report.py --incidents 1000000
	$(BIN)/python benchmarks/bench_delivery.py
	$(BIN)/python benchmarks/bench_authoring.py
	$(BIN)/python benchmarks/bench_postgres.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run.py --repeats 3
	$(BIN)/python benchmarks/bench_calendar.py --runs 3
	$(BIN)/python benchmarks/bench_store.py --quick
	$(BIN)/python benchmarks/bench_tick.py --incidents 100000 --store both
	$(BIN)/python benchmarks/bench_report.py --incidents 100000 --repeats 1
	$(BIN)/python benchmarks/bench_delivery.py --runs 3
	$(BIN)/python benchmarks/bench_authoring.py --quick
	$(BIN)/python benchmarks/bench_postgres.py --runs 1

stress: $(STAMP)
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
