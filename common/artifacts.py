"""Trained weights: keep what a run trained under results/models/<run_id>/ (atomically) and load it back."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from common import methods
from common.errors import UserError
from common.methods import ADAPTER_NAME
from common.models import base_model
from common.readout import last_layer_for_cls_only
from common.schema import RunCfg

MODELS_DIR = "models"  # under output.dir; git-ignored (weights are for reuse, not for the repository)
HEAD_FILE = "head.safetensors"  # the trained tensors outside an AdapterHub adapter (its head; all of head only, BitFit)
INFO_FILE = "imdb_peft.json"  # what was saved and how to load it back


def models_dir(output_dir: str, run_id: str) -> Path:
    return Path(output_dir) / MODELS_DIR / run_id


def what_to_save(cfg: RunCfg) -> str:
    """adapter | model | none. auto: the adapter for PEFT methods, nothing for full fine-tuning (a 400 MB copy of
    bert-base per run is asked for with output.save_model: full)."""
    want = cfg.output.save_model
    if want == "none":
        return "none"
    if cfg.peft.method == "full":
        return "model" if want == "full" else "none"
    return "adapter"


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _head_state(model) -> dict:
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters()
            if p.requires_grad and ".adapters." not in f".{n}"}


def _write(model, cfg: RunCfg, kind: str, folder: Path) -> None:
    from safetensors.torch import save_file

    saves = methods.get(cfg.peft.method).saves
    if saves == "adapters":
        model.save_adapter(str(folder), ADAPTER_NAME, use_safetensors=True)
        save_file(_head_state(model), str(folder / HEAD_FILE))
    elif saves == "tensors":  # head only, BitFit: the tensors that trained, loaded back onto the same base
        save_file(_head_state(model), str(folder / HEAD_FILE))
    else:  # peft: adapter weights + its modules_to_save (classifier, pooler); full FT: the whole model
        model.save_pretrained(str(folder))
    _name_base_portably(folder, cfg)
    (folder / INFO_FILE).write_text(json.dumps({"kind": kind, "method": cfg.peft.method,
                                                "base": cfg.model.name_or_path, "init": cfg.model.init}, indent=2))


# Where each library's saved adapter names its base model. They write the path the base was loaded from, which for a
# packaged or cached checkpoint is an absolute path inside this machine's environment.
BASE_KEYS = {"adapter_config.json": ("base_model_name_or_path", "model_name")}


def _name_base_portably(folder: Path, cfg: RunCfg) -> None:
    """Name the base model as the config does (a hub id, `package:<package>/<folder>`, or the folder the user gave),
    so that the adapter resolves on another machine that has the same model (README: "Trained weights")."""
    for name, keys in BASE_KEYS.items():
        path = folder / name
        if not path.is_file():
            continue
        doc = json.loads(path.read_text())
        for key in keys:
            if key in doc:
                doc[key] = cfg.model.name_or_path
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def save_trained(model, cfg: RunCfg, run_id: str) -> dict:
    """Write the run's trained weights into a temporary folder beside the final one, then rename it into place:
    a killed run leaves no half folder under the final name. Returns {'dir', 'bytes', 'kind'} for the record."""
    kind = what_to_save(cfg)
    if kind == "none":
        return {"kind": "none", "dir": None, "bytes": None}
    final = models_dir(cfg.output.dir, run_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=final.parent))
    try:
        _write(model, cfg, kind, tmp)
        os.chmod(tmp, 0o755)
        if final.exists():  # a forced rerun: move the old folder aside first, so the final name is never half
            old = Path(tempfile.mkdtemp(prefix=f".{run_id}.old.", dir=final.parent))
            os.replace(final, old / "x")
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"kind": kind, "dir": str(Path(MODELS_DIR) / run_id), "bytes": folder_bytes(final)}


def load_trained(cfg: RunCfg, folder: Path, model_config):
    """The trained model of a run: its base (pretrained, or the same seeded random weights) plus what it saved."""
    from transformers import AutoModelForSequenceClassification, set_seed

    info = json.loads((folder / INFO_FILE).read_text())
    if info["kind"] == "model":
        return _readout_as_run(AutoModelForSequenceClassification.from_pretrained(str(folder),
                                                                                 attn_implementation="sdpa"), cfg)
    set_seed(cfg.train.seed)  # a random-init base is rebuilt from the seed it was built from (tests, benchmarks)
    base = base_model(cfg, model_config, cfg.model.init == "pretrained", "sdpa")
    saves = methods.get(cfg.peft.method).saves
    if saves in ("adapters", "tensors"):
        from safetensors.torch import load_file

        if saves == "adapters":
            import adapters

            adapters.init(base)
            name = base.load_adapter(str(folder), set_active=True, use_safetensors=True)
            base.set_active_adapters(name)
        missing = set(load_file(str(folder / HEAD_FILE))) - {n for n, _ in base.named_parameters()}
        if missing:
            raise UserError(f"{folder}: {HEAD_FILE} holds parameters the model lacks: {sorted(missing)[:3]}")
        base.load_state_dict(load_file(str(folder / HEAD_FILE)), strict=False)
        return _readout_as_run(base, cfg).eval()
    from peft import PeftModel

    return _readout_as_run(PeftModel.from_pretrained(base, str(folder)), cfg).eval()


def _readout_as_run(model, cfg: RunCfg):
    """The last layer as the run computed it: [CLS] only unless model.last_layer is full. A loaded model only
    evaluates, and without dropout that readout is exact wherever the model type has it (common/readout.py)."""
    if cfg.model.last_layer != "full":
        last_layer_for_cls_only(model)
    return model


def require_saved(output_dir: str, run_id: str, record: dict) -> Path:
    saved = record.get("saved") or {}
    folder = Path(output_dir) / saved["dir"] if saved.get("dir") else None
    if folder is None or not (folder / INFO_FILE).is_file():
        why = ("it was trained with output.save_model " + str(record["config"]["output"].get("save_model", "auto"))
               + " (full fine-tuning keeps no weights unless output.save_model: full)") if folder is None else \
            f"its folder {folder} is missing (weights are git-ignored: they stay on the machine that trained them)"
        raise UserError(f"--run {run_id}: no saved weights: {why}. Rerun it with --force to save them")
    return folder
