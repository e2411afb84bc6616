# The two commands: `make demo` (set up, then run the default pipeline offline on CPU) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test lint bench schema demo-data toy-models clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo-data: $(STAMP)
	test -f data/toy/items.parquet || $(BIN)/blindspot toy-data --config config/config.yaml --out data/toy

demo: demo-data
	$(BIN)/snakemake --workflow-profile workflow/profiles/local
	$(BIN)/blindspot calibrate --config config/config.yaml

# Retrain the committed toy checkpoints (about 16 minutes on 2 cores); see README "Does it measure what it claims?"
toy-models: $(STAMP)
	$(BIN)/blindspot toy-train --out src/blindspot/toy/checkpoints

test: demo-data
	$(BIN)/ruff check src tests bench
	$(BIN)/snakemake --lint
	$(BIN)/pytest

lint: demo-data
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/snakemake --lint

bench: $(STAMP)
	$(BIN)/python bench/render.py
	$(BIN)/python bench/predict.py
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/probe.py

schema: $(STAMP)
	$(BIN)/blindspot schema --out workflow/schemas/config.schema.json

clean:
	rm -rf results/staged results/render results/predictions results/decay results/hidden results/probes results/benchmarks results/logs .snakemake
