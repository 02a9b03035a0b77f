#!/usr/bin/env bash
# Runs on the device machine (carry .whl and .devdata): pinned packages over the image's, then `make bench`'s
# Python with real steps, then one Part 1 run per method at seed settings (random init; timing only).
#   run(command="bash bench/on_device.sh 300", carry=[".whl", ".devdata"], timeout_s=540)
# Rehearsal on the CPU machine, with the venv's pinned packages instead of the wheels (built for Python 3.12):
#   PATH=$PWD/.venv/bin:$PATH SKIP_WHEELS=1 OUT=$(mktemp -d) \
#     BENCH_EXTRA="--eval-size 32 --set data.test_samples=32" bash bench/on_device.sh 1
set -uo pipefail
STEPS=${1:-300}
if [ -z "${SKIP_WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
mkdir -p ../shared/data/imdb ../shared/data/vocab ../shared/bench
# The device machine has no ../shared: recreate the parts the benchmark reads (never overwrite a real one).
[ -f ../shared/data/imdb/train.csv.gz ] || cp .devdata/*.csv.gz ../shared/data/imdb/
[ -f ../shared/data/vocab/bert-base-uncased-vocab.txt ] || cp .devdata/bert-base-uncased-vocab.txt ../shared/data/vocab/
[ -f ../shared/bench/seed_reference.py ] || cp .devdata/seed_reference.py ../shared/bench/ 2>/dev/null
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)"
python3 -m bench.gpu --steps "$STEPS" --out "$OUT" ${BENCH_EXTRA:-} 2>&1 | tee "$OUT/bench.log" | grep -E "^\[bench\]|^\|"
# Part 3's other families, the project's path alone (the seed recipe has none of them): fewer steps, one table.
python3 -m bench.gpu --steps "$((STEPS / 3 > 0 ? STEPS / 3 : 1))" --methods bert-lora,bert-dora,bert-ia3,bert-prompt,bert-ptuning,bert-adapter \
  --tag part3 --out "$OUT" ${BENCH_EXTRA:-} 2>&1 | tee "$OUT/bench-part3.log" | grep -E "^\[bench\]|^\|"
for cfg in configs/part1_distilbert_full.yaml configs/part1_distilbert_lora.yaml; do
  start=$SECONDS
  python3 -m part2_lora.train --config $cfg --set model.init=random \
    --set model.tokenizer=../shared/data/vocab/bert-base-uncased-vocab.txt --set data.dir=../shared/data/imdb \
    --set output.dir="$OUT/part1" > "$OUT/part1-$(basename $cfg .yaml).out" 2>&1
  rc=$?
  grep -E "^\[|^error" "$OUT/part1-$(basename $cfg .yaml).out" | tee -a "$OUT/part1.log"
  echo "$cfg: exit $rc, wall $((SECONDS - start)) s (process start to exit, test evaluation included)" | tee -a "$OUT/part1.log"
done
