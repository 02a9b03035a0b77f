"""The run schema: nested frozen dataclasses with their defaults, and the helpers that derive one run's config.

  python -m common.schema   every config key with its type, default and comment
"""
from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from common import methods

PROJECT_ROOT = Path(__file__).resolve().parent.parent

METHODS = methods.METHODS  # the registry's names (common/methods.py), in its order
# The study's parts: part -> (title, the reference study's model for it); common/cli.py: the module a user runs for each.
PARTS = {"part1": ("Part 1: full fine-tuning vs LoRA", "DistilBERT-base"),
         "part2": ("Part 2: full fine-tuning vs prefix tuning", "BERT-base"),
         "part3": ("Part 3: every common PEFT family on one model", "BERT-base")}
# train.report_to name (a Hugging Face Trainer integration) -> the Python package it needs.
REPORT_TO_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "comet_ml": "comet_ml",
                      "neptune": "neptune", "clearml": "clearml", "dvclive": "dvclive", "codecarbon": "codecarbon",
                      "azure_ml": "azureml", "trackio": "trackio", "dagshub": "dagshub", "swanlab": "swanlab",
                      "flyte": "flytekit"}
PRECISIONS = ("auto", "fp16", "bf16", "fp32")
DEVICES = ("auto", "cuda", "cpu")
# train.dropout_kernel's fast kernels (common/dropout.py) -> where their random words come from; torch: torch's own.
FAST_DROPOUT_BITS = {"fast": "torch", "fast_sfc64": "sfc64"}
DROPOUT_KERNELS = ("auto", "torch", *FAST_DROPOUT_BITS)


@dataclass(frozen=True)
class ModelCfg:
    # Hub id, local folder, or "package:<python package>/<folder>" (a checkpoint shipped inside a pip package).
    name_or_path: str = "distilbert-base-uncased"
    # pretrained: load the weights. random: the architecture from its config with fresh weights (tests, benchmarks).
    init: str = "pretrained"
    # Tokenizer source when it differs from the model: a folder, hub id, or a WordPiece vocab.txt.
    tokenizer: Optional[str] = None
    # Architecture overrides applied to the model config (tiny random models for tests).
    config_overrides: dict = field(default_factory=dict)
    # sdpa: fused attention kernels; eager: the reference implementation (numerically the same maths).
    # auto: sdpa. With train.dropout_kernel resolving to fast, SDPA's attention dropout (inside its kernel) is
    # out of the fast kernel's reach, so BERT trains through its eager path and evaluates with SDPA, and other
    # models are built eager (on CPU, SDPA with dropout runs unfused anyway).
    attn_implementation: str = "auto"
    # full: the last encoder layer computes every position. cls: only the one the classification head reads
    # (common/readout.py; same numbers, ~12.5% fewer products in MiniLM-L6's encoder). auto: cls where that is the
    # same computation (BERT-style models, and while training, the fast dropout kernel), else full.
    last_layer: str = "auto"


@dataclass(frozen=True)
class DataCfg:
    # Folder holding train.csv / test.csv (or .csv.gz). `make data` writes data/imdb from the hub.
    dir: str = "data/imdb"
    text_column: str = "sentences"
    label_column: str = "labels"
    max_length: int = 256
    # Class-balanced subsample sizes; null means the whole split.
    train_samples: Optional[int] = None
    test_samples: Optional[int] = None
    # Stratified validation reviews held out of train for model selection and learning curves:
    # 1,000 of 25,000 (4%) gives a +-1.9-point 95% interval on accuracy near 90%, enough to rank learning rates.
    val_samples: int = 1000
    # Seed of sampling and the validation split: fixed across training seeds, so every seed sees the same data.
    seed: int = 1234
    # The test sample is drawn from the sampling stream after the training sample, whose draw moves that stream by an
    # amount that depends on train_samples: 24,000 training reviews would test on other reviews than 3,000 (1,012 of
    # 5,000 shared). Set, the test reviews are drawn as a run with this many training reviews draws them, so setups
    # that differ in train_samples test on the same reviews and pair review by review (profile `data`: 3,000).
    test_drawn_as_train_samples: Optional[int] = None
    cache_dir: str = ".cache/tokenized"


@dataclass(frozen=True)
class PeftBase:
    # full = the null PEFT config: every weight trains, same code path as the adapters. One of common/methods.py's
    # REGISTRY.
    method: str = "full"
    # Also train the BERT pooler (dense + tanh over [CLS], which BertForSequenceClassification classifies), saved
    # with the adapter as a peft `modules_to_save` module. Off at the reference settings: bert-base-uncased's pooler was
    # trained by next-sentence prediction. On in the quick profile for prefix tuning: all-MiniLM-L6-v2 was trained
    # with mean pooling, so its pooler is barely trained (weights std 0.009) and a frozen one gives the head almost
    # no signal; prefix tuning then collapses to one class. Costs 384*384 + 384 = 147,840 parameters on MiniLM-L6
    # (768*768 + 768 = 590,592 on bert-base).
    train_pooler: bool = False


# peft.<section> for every method's settings, as common/methods.py's registry defines them (peft.lora, peft.ia3, ...).
PeftCfg = dataclasses.make_dataclass(
    "PeftCfg", [(name, cls, field(default_factory=cls)) for name, cls in methods.sections().items()],
    bases=(PeftBase,), frozen=True)
PeftCfg.__module__ = __name__


@dataclass(frozen=True)
class TrainCfg:
    epochs: int = 3
    batch_size: int = 16
    eval_batch_size: int = 64
    learning_rate: float = 2e-5
    # Grid searched by `make sweep` on the validation split; empty means no sweep for this config.
    lr_grid: list = field(default_factory=list)
    # When the best rate is the grid's lowest or highest, the sweep tries this many further rates past that edge, each
    # one grid ratio on (1e-3 at the top of [1e-4, 3e-4, 1e-3] -> 3.3e-3): an optimum at an edge may lie beyond it.
    lr_grid_edge_steps: int = 1
    # Use the learning rate picked by `make sweep` for this part/method/profile when one exists.
    use_sweep_lr: bool = True
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    lr_scheduler: str = "linear"
    seed: int = 0
    # Several seeds: one run (record + CSV row) per seed. null (left out) means just `seed`; an empty list is refused.
    seeds: Optional[list] = None
    # auto | fp16 | bf16 | fp32. auto: bf16 where the GPU or CPU runs it natively, else fp16 on CUDA, fp32 on CPU.
    precision: str = "auto"
    device: str = "auto"
    # Reference-sized runs on a CPU take hours: refused unless this is set.
    allow_cpu: bool = False
    gradient_checkpointing: bool = False
    # dynamic: pad each batch to its longest review (same maths, fewer pad tokens); max_length: the reference's padding.
    padding: str = "dynamic"
    # Batches of similar length (shuffled buckets): less padding still; changes which reviews share a batch.
    length_buckets: bool = True
    torch_compile: bool = False
    # auto: fused AdamW (one pass over each tensor; same update rule as adamw_torch's foreach kernel, equal to
    # rounding) on CUDA, and on CPU where torch has it (>= 2.4): 8 vs 57 ms per quick-profile full-FT step there.
    optim: str = "auto"
    # CPU memory allocator (glibc). reuse: freed blocks stay in the process for the next step instead of going back
    # to the kernel and being faulted in, zeroed, again (52,000-59,000 page faults per quick-profile full-FT step
    # under glibc's defaults on the Zen 3, 650-1,040 with reuse: common/memory.py; 1.10x faster training, devices.py).
    # system: glibc's defaults. auto: reuse on CPU where glibc is the allocator. Changes speed only, not what a run
    # computes (left out of the run's identity).
    allocator: str = "auto"
    # Dropout masks. torch: bernoulli_ per element. fast: 16 random bits per element from the same generator,
    # drop probability rounded to 1/65536 (common/dropout.py): 3.7x cheaper masks on CPU, where dropout was 45%
    # of a LoRA step. fast_sfc64: the same kernel, its words from numpy's SFC64 seeded per mask by torch's
    # generator (another random stream, as a different seed is). auto: fast_sfc64 on CPU (LoRA steps 1.05x faster
    # than with fast), torch on CUDA (whose fused dropout is already cheap).
    dropout_kernel: str = "auto"
    dataloader_workers: int = 2
    # Stop after this many optimizer steps (benchmarks); null means full epochs.
    max_steps: Optional[int] = None
    # Validation passes per epoch (learning curves; the last one always scores the final model, which the sweep
    # ranks), plus one at step 0. 0: none. Evaluation draws no random numbers, so it does not change training.
    evals_per_epoch: int = 1
    # Training loss is logged every this many optimizer steps (the loss plot's resolution).
    logging_steps: int = 10
    # Live logs through the Trainer's integrations, comma-separated: none | tensorboard (events under
    # <output.dir>/logs/<run_id>/, `make tensorboard`) | wandb, mlflow, ... (REPORT_TO_PACKAGES; each needs its package).
    report_to: str = "none"


@dataclass(frozen=True)
class OutputCfg:
    dir: str = "results"
    save_predictions: bool = True
    # Trained weights under <dir>/models/<run_id>/ (git-ignored), for `python -m common.predict`. auto: the adapter
    # for PEFT methods (0.3-40 MB), nothing for full fine-tuning; full: full fine-tuning's whole model too
    # (bert-base: 418 MB per run); none: nothing.
    save_model: str = "auto"


@dataclass(frozen=True)
class RunCfg:
    part: str = ""
    profile: str = "default"
    model: ModelCfg = field(default_factory=ModelCfg)
    data: DataCfg = field(default_factory=DataCfg)
    peft: PeftCfg = field(default_factory=PeftCfg)
    train: TrainCfg = field(default_factory=TrainCfg)
    output: OutputCfg = field(default_factory=OutputCfg)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def key_docs() -> list:
    """(dotted key, type, default, comment) for every leaf of RunCfg, the comment being the lines written above the
    field (and after it on its line) in this file or, for a method's settings, in common/methods.py: the reference a
    user reads, from the code itself."""
    import typing

    comments = {}  # (class, field) -> comment
    for path in (Path(__file__), Path(methods.__file__)):
        lines = path.read_text(encoding="utf-8").splitlines()
        comments.update(_field_comments(ast.parse("\n".join(lines)), lines))
    out = []

    def walk(cls, prefix: str):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            if dataclasses.is_dataclass(hint):
                walk(hint, f"{prefix}{f.name}.")
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            name = f"{args[0].__name__} or null" if typing.get_origin(hint) is typing.Union else hint.__name__
            owner = next((c.__name__ for c in cls.__mro__ if (c.__name__, f.name) in comments), cls.__name__)
            out.append((f"{prefix}{f.name}", name, default, comments.get((owner, f.name), "")))

    walk(RunCfg, "")
    return out


def _field_comments(tree, lines: list) -> dict:
    """(class, field) -> the comment lines above a dataclass field and after it on its line."""
    comments = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                above, i = [], stmt.lineno - 2
                while i >= 0 and lines[i].strip().startswith("#"):
                    above.insert(0, lines[i].strip().lstrip("# ").strip())
                    i -= 1
                after = lines[stmt.lineno - 1].split("  # ", 1)[1].strip() if "  # " in lines[stmt.lineno - 1] else ""
                comments[node.name, stmt.target.id] = " ".join(above + ([after] if after else []))
    return comments


def flatten(d: dict, prefix: str = "") -> dict:
    """A nested config dict as dotted keys -> values (config_overrides stays one value)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "config_overrides":
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def method_section(method: str) -> Optional[str]:
    """The peft.<section> holding a method's settings (None for full fine-tuning, head only and BitFit)."""
    return methods.REGISTRY[method].section if method in methods.REGISTRY else None


def expand_seeds(cfg: RunCfg) -> list:
    """One RunCfg per seed of train.seeds (or the single train.seed)."""
    seeds = cfg.train.seeds if cfg.train.seeds is not None else [cfg.train.seed]
    return [dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=s, seeds=None)) for s in seeds]


def report_to_names(cfg: RunCfg) -> list:
    """train.report_to as the Trainer's list ([] for none)."""
    names = [n.strip() for n in cfg.train.report_to.split(",") if n.strip()]
    return [] if names == ["none"] else names


def with_learning_rate(cfg: RunCfg, lr: float) -> RunCfg:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, learning_rate=float(lr)))


if __name__ == "__main__":
    for key, kind, default, comment in key_docs():
        print(f"{key}: {kind} = {default!r}" + (f"\n    {comment}" if comment else ""))
