# The two commands: `make demo` (set up, then run the default pipeline offline on CPU) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

# Snakemake's lint checks the workflow, not the demo data: skip the config's path checks for it.
LINT_SNAKEMAKE := $(BIN)/snakemake --lint --config check_paths=false

.PHONY: demo demo-llava test test-all test-fast lint typecheck bench mutants faults schema demo-data toy-models clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The toy benchmark is rebuilt when the config or the toy world's definition changes.
data/toy/items.parquet: config/config.yaml src/blindspot/toy/items.py src/blindspot/toy/scenes.py | $(STAMP)
	$(BIN)/blindspot toy-data --config config/config.yaml --out data/toy

demo-data: data/toy/items.parquet

demo: demo-data
	$(BIN)/snakemake --workflow-profile workflow/profiles/local
	$(BIN)/blindspot calibrate --config config/config.yaml
	$(BIN)/blindspot summary --results results

# The same toy world with the LLaVA-NeXT toy models (config/toy-llava.yaml), calibrated; about 9 minutes on 2 cores.
demo-llava: demo-data
	$(BIN)/snakemake --workflow-profile workflow/profiles/local --configfile config/toy-llava.yaml
	$(BIN)/blindspot calibrate --config config/toy-llava.yaml
	$(BIN)/blindspot summary --results results

# Retrain the committed toy checkpoints, both families (about 60 minutes on 2 cores); see docs/calibration.md
toy-models: $(STAMP)
	$(BIN)/blindspot toy-train --out src/blindspot/toy/checkpoints

# What CI runs (.ci/run), within 15 minutes on 2 cores and without root: lint, type check, workflow lint, the unit
# tests, the end-to-end workflow tests and the Qwen toy calibration. Tests marked `extended` are left to test-all.
test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(LINT_SNAKEMAKE)
	$(BIN)/pytest -m "not extended"

# Everything: test, plus retraining the toy donors, the LLaVA-NeXT calibration, make faults, the real SLURM run
# (skipped, with its reason, where SLURM cannot be installed) and the report in headless Chromium.
test-all: $(STAMP)
	-tests/install-chromium.sh
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(LINT_SNAKEMAKE)
	$(BIN)/pytest

# The quick loop while editing: unit tests that take under a second or so, no Snakemake runs (under a minute).
test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow and not extended" -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(LINT_SNAKEMAKE)

typecheck: $(STAMP)
	$(BIN)/mypy

# Plant single-point bugs in the measurement code; each must be caught by the unit tests or calibrate (docs/mutants.md).
mutants: $(STAMP)
	$(BIN)/python tests/mutants.py

# Kill -9 mid-job, damaged stores, hostile inputs, end to end on the toy world (docs/faults.md).
faults: $(STAMP)
	cd tests && ../$(BIN)/python faults.py

bench: $(STAMP)
	$(BIN)/python bench/render.py
	$(BIN)/python bench/predict.py
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/probe.py
	$(BIN)/python bench/patch.py
	$(BIN)/python bench/lens.py
	$(BIN)/python bench/scale.py

schema: $(STAMP)
	$(BIN)/blindspot schema --out workflow/schemas/config.schema.json

clean:
	rm -rf results/staged results/render results/predictions results/decay results/hidden results/probes results/swaps results/patches results/lens results/knockout results/tables results/plots results/report.html results/benchmarks results/logs .snakemake
