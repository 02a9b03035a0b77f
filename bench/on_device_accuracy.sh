#!/usr/bin/env bash
# Real accuracy at full scale (issue 14, item 3), on the device machine: the quick profile's pretrained MiniLM-L6
# at the seed's data and budget (all 24,000 training reviews left after the 1,000-review validation hold-out,
# 256 tokens, 3 epochs, all 25,000 test reviews), seed 0: full FT, LoRA, prefix tuning. Learning rates and the
# prefix's trained pooler are the quick profile's. The checkpoint travels as .devmodel (fp16 weights, loaded back
# into fp32) in a call of its own, right after bench/on_device.sh (whose .whl/.devdata stay while the machine is
# warm):
#   run(command="bash bench/on_device_accuracy.sh", carry=[".devmodel"], timeout_s=540)
# Rehearsal on the CPU machine (tiny sizes, the venv's packages):
#   PATH=$PWD/.venv/bin:$PATH SKIP_WHEELS=1 OUT=$(mktemp -d) SIZES="--set data.train_samples=64 \
#     --set data.test_samples=64 --set data.val_samples=16 --set train.epochs=1" bash bench/on_device_accuracy.sh
set -uo pipefail
if [ -z "${SKIP_WHEELS:-}" ]; then
  [ -d /tmp/site ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
[ -f ../shared/data/imdb/train.csv.gz ] || { mkdir -p ../shared/data/imdb && cp .devdata/*.csv.gz ../shared/data/imdb/; }
SIZES=${SIZES:-"--set data.train_samples=null --set data.test_samples=null --set data.val_samples=1000 --set train.epochs=3"}
COMMON="--profile quick --set model.name_or_path=.devmodel/minilm --set data.dir=../shared/data/imdb \
  --set data.max_length=256 --set output.dir=$OUT/accuracy $SIZES"
run() {  # recipe, config, name
  start=$SECONDS
  python3 -m "$1" --config "$2" $COMMON > "$OUT/accuracy-$3.out" 2>&1
  rc=$?
  grep -E "^\[(run|done|failed)|^error" "$OUT/accuracy-$3.out" | tee -a "$OUT/accuracy.log"
  echo "$3: exit $rc, wall $((SECONDS - start)) s" | tee -a "$OUT/accuracy.log"
}
run part2_lora.train configs/part1_distilbert_full.yaml full
run part2_lora.train configs/part1_distilbert_lora.yaml lora
run part3_prefix.train configs/part2_bert_prefix.yaml prefix
cd "$OUT/accuracy" && tar czf "$OUT/accuracy-results.tgz" part*.csv runs summary.md 2>/dev/null; ls -la "$OUT"
