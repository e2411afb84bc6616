# The two commands: `make demo` (set up, then run the default pipeline offline on CPU) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test lint bench schema demo-data clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo-data: $(STAMP)
	test -f data/demo/shapes_colour/items.parquet || \
	  $(BIN)/blindspot demo-data --out data/demo/shapes_colour --items 48 --kind color_mc --image-mode struct
	test -f data/demo/shapes_yesno/items.jsonl || \
	  $(BIN)/blindspot demo-data --out data/demo/shapes_yesno --items 48 --kind shape_yes_no --format jsonl --image-mode path
	test -f data/models/tiny_qwen/model.safetensors || \
	  $(BIN)/blindspot tiny-model --family qwen2_5_vl --out data/models/tiny_qwen
	test -f data/models/tiny_llava/model.safetensors || \
	  $(BIN)/blindspot tiny-model --family llava_next --out data/models/tiny_llava

demo: demo-data
	$(BIN)/snakemake --workflow-profile workflow/profiles/local

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

schema: $(STAMP)
	$(BIN)/blindspot schema --out workflow/schemas/config.schema.json

clean:
	rm -rf results/staged results/render results/predictions results/decay results/benchmarks results/logs .snakemake
