"""PEFT methods: the registry, one entry per method (full fine-tuning is the null one), with its settings and builder.

To add a method:
  1. write its settings as a frozen dataclass here (if it has any), each field with a comment, and a builder
     `_name(cfg, model) -> model` that wraps the model (peft imports inside the function: this module sits below
     everything else and imports nothing heavy);
  2. add one `Method(...)` to REGISTRY: name (peft.method's value), label, colour, builder, the peft section its
     settings live in, refusals (what it cannot apply to, said before training), the module-name lists the preflight
     checks, the default rate grid;
  3. add configs/part3_bert_<name>.yaml (a header with its command and reason; only what differs from the schema).
The schema (peft.<section>), validation, the preflight checks, saving and loading, the report's labels and colours
and the tests read the registry; nothing else names a method.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from common.errors import UserError

ADAPTER_NAME = "imdb"  # AdapterHub adapters are named; one per model here
# BERT's layer names for the attention query and value projections (DistilBERT: q_lin, v_lin): the default targets
# of the Part 3 families, as LoRA's in the reference settings.
QV = ["query", "value"]


def _names(key: str, mods) -> list:
    if not mods or not all(isinstance(m, str) and m for m in mods):
        return [(key, f"must be a non-empty list of module names, got {mods!r}")]
    return []


def _at_least(key: str, value, low) -> list:
    return [(key, f"must be >= {low}, got {value!r}")] if value is not None and value < low else []


def _fraction(key: str, value, high: float = 1.0) -> list:
    return [] if 0.0 <= value < high else [(key, f"must be in [0, {high:g}), got {value!r}")]


def _choice(key: str, value, allowed) -> list:
    return [] if value in allowed else [(key, f"must be one of {list(allowed)}, got {value!r}")]


# ------------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class LoraCfg:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list = field(default_factory=lambda: ["q_lin", "v_lin"])

    def problems(self) -> list:
        return _at_least("r", self.r, 1) + _at_least("alpha", self.alpha, 1) + _fraction("dropout", self.dropout) + \
            _names("target_modules", self.target_modules)


@dataclass(frozen=True)
class Ia3Cfg:
    # (IA)^3 learns one scaling vector per targeted layer: keys, values and the feed-forward output (its vector
    # scales the layer's input, 3,072 wide on bert-base). "output.dense" also matches the attention output projection.
    target_modules: list = field(default_factory=lambda: ["key", "value", "output.dense"])
    feedforward_modules: list = field(default_factory=lambda: ["output.dense"])

    def problems(self) -> list:
        out = _names("target_modules", self.target_modules)
        if not all(isinstance(m, str) and m for m in self.feedforward_modules):
            out.append(("feedforward_modules", f"must be a list of module names, got {self.feedforward_modules!r}"))
        stray = [m for m in self.feedforward_modules if m not in self.target_modules]
        return out + ([("feedforward_modules", f"{stray} must also be in peft.ia3.target_modules")] if stray else [])


@dataclass(frozen=True)
class PromptCfg:
    # Prompt tuning: trained input embeddings prepended to every review (20 x 768 = 15,360 on bert-base).
    num_virtual_tokens: int = 20
    init: str = "random"  # random | vocab (peft's SAMPLE_VOCAB: start from embeddings of random vocabulary words)

    def problems(self) -> list:
        return _at_least("num_virtual_tokens", self.num_virtual_tokens, 1) + _choice("init", self.init,
                                                                                   ("random", "vocab"))


@dataclass(frozen=True)
class PtuningCfg:
    # P-tuning: the virtual tokens come out of a small encoder (here an MLP with this hidden size).
    num_virtual_tokens: int = 20
    encoder_hidden_size: int = 128
    encoder_type: str = "MLP"  # MLP | LSTM

    def problems(self) -> list:
        return _at_least("num_virtual_tokens", self.num_virtual_tokens, 1) + \
            _at_least("encoder_hidden_size", self.encoder_hidden_size, 1) + \
            _choice("encoder_type", self.encoder_type, ("MLP", "LSTM"))


@dataclass(frozen=True)
class PrefixCfg:
    num_virtual_tokens: int = 20
    prefix_projection: bool = True
    encoder_hidden_size: int = 512
    # random: peft's default. zero: the projection's last layer starts at zero, so every prefix key and value
    # starts at 0 (peft init_weights="zero"): the prefix starts from contributing nothing to the values.
    init: str = "random"

    def problems(self) -> list:
        return _at_least("num_virtual_tokens", self.num_virtual_tokens, 1) + \
            _at_least("encoder_hidden_size", self.encoder_hidden_size, 1) + _choice("init", self.init,
                                                                                    ("random", "zero"))


@dataclass(frozen=True)
class AdapterCfg:
    # AdapterHub bottleneck adapters. seq_bn: Pfeiffer placement (one adapter after each layer's feed-forward);
    # double_seq_bn: Houlsby (two per layer). Bottleneck = hidden / reduction_factor (768 / 16 = 48 on bert-base).
    config: str = "seq_bn"
    reduction_factor: int = 16

    def problems(self) -> list:
        return _choice("config", self.config, ("seq_bn", "double_seq_bn")) + \
            _at_least("reduction_factor", self.reduction_factor, 1)


@dataclass(frozen=True)
class AdaloraCfg:
    # AdaLoRA: LoRA as P diag(E) Q, starting at init_r per layer and pruned, by each triplet's importance, to an
    # average of target_r. The budget falls from tinit (a fraction of training's steps) to tfinal before the end,
    # re-allocated every delta_t steps; peft's update_and_allocate runs after every optimizer step (common/training.py).
    init_r: int = 12
    target_r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list = field(default_factory=lambda: list(QV))
    tinit: float = 0.1
    tfinal: float = 0.2
    delta_t: int = 10
    orth_reg_weight: float = 0.5

    def problems(self) -> list:
        out = _at_least("init_r", self.init_r, 1) + _at_least("target_r", self.target_r, 1) + \
            _at_least("alpha", self.alpha, 1) + _fraction("dropout", self.dropout) + \
            _names("target_modules", self.target_modules) + _at_least("delta_t", self.delta_t, 1) + \
            _fraction("tinit", self.tinit) + _fraction("tfinal", self.tfinal) + \
            _at_least("orth_reg_weight", self.orth_reg_weight, 0.0)
        if self.target_r > self.init_r:
            out.append(("target_r", f"must be <= init_r ({self.init_r}): AdaLoRA only prunes ranks"))
        if self.tinit + self.tfinal >= 1.0:
            out.append(("tfinal", f"tinit + tfinal must leave steps to re-allocate ranks in, got "
                                  f"{self.tinit} + {self.tfinal}"))
        return out


@dataclass(frozen=True)
class LohaCfg:
    # LoHa: the update is the Hadamard product of two rank-r products, (B1 A1) * (B2 A2): rank up to r^2 for twice
    # LoRA's parameters. Scaled by alpha / r as LoRA is.
    r: int = 8
    alpha: int = 16
    rank_dropout: float = 0.0
    module_dropout: float = 0.0
    target_modules: list = field(default_factory=lambda: list(QV))

    def problems(self) -> list:
        return _at_least("r", self.r, 1) + _at_least("alpha", self.alpha, 1) + \
            _fraction("rank_dropout", self.rank_dropout) + _fraction("module_dropout", self.module_dropout) + \
            _names("target_modules", self.target_modules)


@dataclass(frozen=True)
class LokrCfg:
    # LoKr: the update is a Kronecker product C (x) (B A); peft factors each layer's shape itself (decompose_factor
    # -1), e.g. 768 = 24 x 32. Scaled by alpha / r.
    r: int = 8
    alpha: int = 16
    rank_dropout: float = 0.0
    module_dropout: float = 0.0
    decompose_factor: int = -1
    target_modules: list = field(default_factory=lambda: list(QV))

    def problems(self) -> list:
        return _at_least("r", self.r, 1) + _at_least("alpha", self.alpha, 1) + \
            _fraction("rank_dropout", self.rank_dropout) + _fraction("module_dropout", self.module_dropout) + \
            _names("target_modules", self.target_modules)


@dataclass(frozen=True)
class VeraCfg:
    # VeRA: one pair of frozen random matrices (rank r) shared by every targeted layer; each layer trains only two
    # scaling vectors, d (r wide) and b (the layer's output width): 256 + 768 = 1,024 per layer on bert-base.
    r: int = 256
    dropout: float = 0.0
    d_initial: float = 0.1
    projection_prng_key: int = 0
    target_modules: list = field(default_factory=lambda: list(QV))

    def problems(self) -> list:
        return _at_least("r", self.r, 1) + _fraction("dropout", self.dropout) + \
            _names("target_modules", self.target_modules)


@dataclass(frozen=True)
class OftCfg:
    # OFT: each targeted weight is multiplied by a trained block-diagonal orthogonal matrix (Cayley parametrised):
    # blocks of block_size, each with block_size * (block_size - 1) / 2 free values. block_size must divide the
    # layer's input width (768 = 24 x 32 on bert-base; 384 = 12 x 32 on MiniLM-L6).
    block_size: int = 32
    module_dropout: float = 0.0
    target_modules: list = field(default_factory=lambda: list(QV))

    def problems(self) -> list:
        return _at_least("block_size", self.block_size, 2) + _fraction("module_dropout", self.module_dropout) + \
            _names("target_modules", self.target_modules)


@dataclass(frozen=True)
class FourierftCfg:
    # FourierFT: each layer's update is the inverse 2-D Fourier transform of n_frequency trained coefficients at
    # random (seeded) spectral positions, times scaling: 1,000 per layer whatever its shape.
    n_frequency: int = 1000
    scaling: float = 150.0
    random_loc_seed: int = 777
    target_modules: list = field(default_factory=lambda: list(QV))

    def problems(self) -> list:
        return _at_least("n_frequency", self.n_frequency, 1) + _names("target_modules", self.target_modules) + \
            ([] if self.scaling > 0 else [("scaling", f"must be > 0, got {self.scaling!r}")])


@dataclass(frozen=True)
class LntuningCfg:
    # LayerNorm tuning: every LayerNorm's scale and shift train (peft LNTuning: trained copies of the modules).
    # BERT names them LayerNorm (embeddings, and twice a layer: 25 x 2 x 768 = 38,400 on bert-base); DistilBERT
    # sa_layer_norm and output_layer_norm.
    target_modules: list = field(default_factory=lambda: ["LayerNorm"])

    def problems(self) -> list:
        return _names("target_modules", self.target_modules)


# ------------------------------------------------------------------------------------------------ builders


def _heads(cfg) -> dict:
    # peft adds the classifier head (and DistilBERT's pre_classifier, whose name contains "classifier") itself;
    # the pooler joins them when asked: trained whole and saved with the adapter.
    return {"modules_to_save": ["pooler"]} if cfg.peft.train_pooler else {}


def _targets(modules: list):
    return "all-linear" if list(modules) == ["all-linear"] else list(modules)


def _peft(model, config):
    from peft import get_peft_model

    return get_peft_model(model, config)


def _prompt_dims(config) -> dict:
    """What peft's prompt methods cannot infer on every architecture (DistilBERT names them dim/n_layers/n_heads;
    its config maps the standard names, so reading them here works for BERT and DistilBERT alike)."""
    return {"token_dim": config.hidden_size, "num_layers": config.num_hidden_layers,
            "num_attention_heads": config.num_attention_heads, "num_transformer_submodules": 1}


def _lora(cfg, model, use_dora: bool = False):
    from peft import LoraConfig, TaskType

    lo = cfg.peft.lora
    return _peft(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=lo.r, lora_alpha=lo.alpha, lora_dropout=lo.dropout,
                                   target_modules=_targets(lo.target_modules), use_dora=use_dora, **_heads(cfg)))


def _dora(cfg, model):
    return _lora(cfg, model, use_dora=True)  # LoRA's settings plus a trained magnitude per output feature


def _ia3(cfg, model):
    from peft import IA3Config, TaskType

    c = cfg.peft.ia3
    return _peft(model, IA3Config(task_type=TaskType.SEQ_CLS, target_modules=list(c.target_modules),
                                  feedforward_modules=list(c.feedforward_modules), **_heads(cfg)))


def _prompt(cfg, model):
    from peft import PromptTuningConfig, PromptTuningInit, TaskType

    c = cfg.peft.prompt
    init = PromptTuningInit.SAMPLE_VOCAB if c.init == "vocab" else PromptTuningInit.RANDOM
    return _peft(model, PromptTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=c.num_virtual_tokens,
                                           prompt_tuning_init=init, **_prompt_dims(model.config), **_heads(cfg)))


def _ptuning(cfg, model):
    from peft import PromptEncoderConfig, TaskType

    c = cfg.peft.ptuning
    return _peft(model, PromptEncoderConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=c.num_virtual_tokens,
                                            encoder_hidden_size=c.encoder_hidden_size,
                                            encoder_reparameterization_type=c.encoder_type,
                                            **_prompt_dims(model.config), **_heads(cfg)))


def _prefix(cfg, model):
    from peft import PrefixTuningConfig, TaskType

    c = cfg.peft.prefix
    return _peft(model, PrefixTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=c.num_virtual_tokens,
                                           prefix_projection=c.prefix_projection,
                                           encoder_hidden_size=c.encoder_hidden_size,
                                           init_weights="zero" if c.init == "zero" else None, **_heads(cfg)))


def _is_head(name: str, cfg) -> bool:
    """The classifier (and DistilBERT's pre_classifier), and the BERT pooler when peft.train_pooler asks."""
    return "classifier" in name.split(".")[0] or (cfg.peft.train_pooler and ".pooler." in f".{name}")


def _adapter(cfg, model):
    """AdapterHub bottleneck adapter; the classification head (and the pooler, if asked) trains with it, as peft's
    modules_to_save does for the peft methods."""
    import adapters
    from adapters import DoubleSeqBnConfig, SeqBnConfig

    c = cfg.peft.adapter
    kind = {"seq_bn": SeqBnConfig, "double_seq_bn": DoubleSeqBnConfig}[c.config]
    try:
        adapters.init(model)
    except (ValueError, KeyError, AttributeError) as e:
        raise UserError(f"peft.method: adapter: AdapterHub (adapters 1.3.0) does not support "
                        f"{type(model).__name__} ({model.config.model_type}): {e}") from None
    model.add_adapter(ADAPTER_NAME, config=kind(reduction_factor=c.reduction_factor))
    model.train_adapter(ADAPTER_NAME)  # freezes everything else and activates the adapter
    for name, p in model.named_parameters():  # classifier (and DistilBERT's pre_classifier), bert.pooler.*
        if _is_head(name, cfg):
            p.requires_grad_(True)
    return model


def _freeze_but(model, keep) -> object:
    for name, p in model.named_parameters():
        p.requires_grad_(bool(keep(name)))
    return model


def _head(cfg, model):
    """The encoder frozen: only the classification head (and the pooler, if asked) trains; a linear probe of the
    frozen features when the pooler stays frozen."""
    return _freeze_but(model, lambda name: _is_head(name, cfg))


def _bitfit(cfg, model):
    """BitFit (Ben Zaken et al., 2021): every bias of the encoder trains, with the head."""
    return _freeze_but(model, lambda name: _is_head(name, cfg) or name.endswith(".bias"))


def _adalora(cfg, model):
    from peft import AdaLoraConfig, TaskType

    c = cfg.peft.adalora
    # total_step is required here and known only when training starts: AdaloraSchedule sets the real one (and
    # tinit/tfinal from their fractions) before the first step; these placeholders only pass peft's own checks.
    return _peft(model, AdaLoraConfig(task_type=TaskType.SEQ_CLS, init_r=c.init_r, target_r=c.target_r,
                                      lora_alpha=c.alpha, lora_dropout=c.dropout, target_modules=list(c.target_modules),
                                      total_step=1000, tinit=0, tfinal=0, deltaT=c.delta_t,
                                      orth_reg_weight=c.orth_reg_weight, **_heads(cfg)))


def _loha(cfg, model):
    from peft import LoHaConfig, TaskType

    c = cfg.peft.loha
    return _peft(model, LoHaConfig(task_type=TaskType.SEQ_CLS, r=c.r, alpha=c.alpha, rank_dropout=c.rank_dropout,
                                   module_dropout=c.module_dropout, target_modules=list(c.target_modules),
                                   **_heads(cfg)))


def _lokr(cfg, model):
    from peft import LoKrConfig, TaskType

    c = cfg.peft.lokr
    return _peft(model, LoKrConfig(task_type=TaskType.SEQ_CLS, r=c.r, alpha=c.alpha, rank_dropout=c.rank_dropout,
                                   module_dropout=c.module_dropout, decompose_factor=c.decompose_factor,
                                   target_modules=list(c.target_modules), **_heads(cfg)))


def _vera(cfg, model):
    from peft import TaskType, VeraConfig

    c = cfg.peft.vera
    return _peft(model, VeraConfig(task_type=TaskType.SEQ_CLS, r=c.r, vera_dropout=c.dropout, d_initial=c.d_initial,
                                   projection_prng_key=c.projection_prng_key, save_projection=True,
                                   target_modules=list(c.target_modules), **_heads(cfg)))


def _oft(cfg, model):
    from peft import OFTConfig, TaskType

    c = cfg.peft.oft
    return _peft(model, OFTConfig(task_type=TaskType.SEQ_CLS, r=0, oft_block_size=c.block_size,
                                  module_dropout=c.module_dropout, target_modules=list(c.target_modules),
                                  **_heads(cfg)))


def _fourierft(cfg, model):
    from peft import FourierFTConfig, TaskType

    c = cfg.peft.fourierft
    return _peft(model, FourierFTConfig(task_type=TaskType.SEQ_CLS, n_frequency=c.n_frequency, scaling=c.scaling,
                                        random_loc_seed=c.random_loc_seed, target_modules=list(c.target_modules),
                                        **_heads(cfg)))


def _lntuning(cfg, model):
    from peft import LNTuningConfig, TaskType

    c = cfg.peft.lntuning
    return _peft(model, LNTuningConfig(task_type=TaskType.SEQ_CLS, target_modules=list(c.target_modules),
                                       **_heads(cfg)))


# ------------------------------------------------------------------------------------------------ refusals


def _linears(skeleton, targets) -> list:
    """(name, in_features, out_features) of the linear layers a list of module names matches."""
    import torch

    return [(n, m.in_features, m.out_features) for n, m in skeleton.named_modules()
            if isinstance(m, torch.nn.Linear) and any(n == t or n.endswith("." + t) for t in targets)]


def _oft_refusals(cfg, config, skeleton) -> list:
    b = cfg.peft.oft.block_size
    bad = sorted({f"{n.split('.')[-1]} ({i} inputs)" for n, i, _ in _linears(skeleton, cfg.peft.oft.target_modules)
                  if i % b})
    return [f"peft.oft.block_size: OFT splits each targeted layer's inputs into blocks of {b}, which does not divide "
            f"{', '.join(bad)} of {type(skeleton).__name__}; choose a divisor of the hidden size "
            f"{config.hidden_size}"] if bad else []


def _fourierft_refusals(cfg, config, skeleton) -> list:
    n = cfg.peft.fourierft.n_frequency
    small = sorted({f"{name.split('.')[-1]} ({i} x {o})" for name, i, o in
                    _linears(skeleton, cfg.peft.fourierft.target_modules) if i * o < n})
    return [f"peft.fourierft.n_frequency: {n} spectral coefficients do not fit in {', '.join(small)}: at most "
            f"in x out per layer"] if small else []


def _bias_refusals(cfg, config, skeleton) -> list:
    if any(n.endswith(".bias") for n, _ in skeleton.named_parameters()):
        return []
    return [f"peft.method: bitfit trains biases, and {type(skeleton).__name__} has none"]


def _prefix_refusals(cfg, config, skeleton) -> list:
    import inspect

    out = []
    backbone = skeleton.base_model
    if "past_key_values" not in inspect.signature(backbone.forward).parameters:
        out.append(f"peft.method: prefix tuning needs a model that accepts past_key_values; {type(backbone).__name__} "
                   f"({config.model_type}) does not. Use lora or full, or a BERT-style model")
    if cfg.train.gradient_checkpointing:
        out.append("train.gradient_checkpointing: not supported with prefix tuning (peft's prefix path passes "
                   "past_key_values, which checkpointed BERT layers drop); set it to false")
    return out


def _adalora_refusals(cfg, config, skeleton) -> list:
    if cfg.train.gradient_checkpointing:
        return ["train.gradient_checkpointing: AdaLoRA scores each rank by its gradient after every step; "
                "set it to false"]
    return []


def _nothing(*_args) -> list:
    return []


def _adalora_callbacks(cfg) -> list:
    from transformers import TrainerCallback

    c = cfg.peft.adalora

    class AdaloraSchedule(TrainerCallback):
        """AdaLoRA's budget schedule from the run's real step count (tinit, tfinal as fractions of it), then a rank
        re-allocation after every optimizer step, while the gradients it scores are still there (peft's
        update_and_allocate, before they are zeroed)."""

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            pc = next(iter(model.peft_config.values()))  # the object peft's RankAllocator reads
            pc.total_step = state.max_steps
            pc.tinit, pc.tfinal = int(c.tinit * state.max_steps), int(c.tfinal * state.max_steps)

        def on_optimizer_step(self, args, state, control, model=None, **kwargs):
            model.base_model.update_and_allocate(state.global_step)

    return [AdaloraSchedule()]


def _no_tokens(cfg) -> int:
    return 0


# ------------------------------------------------------------------------------------------------ registry


@dataclass(frozen=True)
class Method:
    name: str  # peft.method's value; run ids and file names carry it
    label: str  # tables and plot legends
    color: str  # one colour in every figure of every part
    build: Callable  # (cfg, model) -> the model that trains
    # The peft.<section> holding its settings, and that section's dataclass where this entry defines it (DoRA and
    # LoRA on all linear layers read LoRA's; head only and BitFit have none).
    section: Optional[str] = None
    settings: Optional[type] = None
    library: str = "peft"  # peft | transformers | adapters: what it is built with
    # How `common.artifacts` keeps what it trained: peft (save_pretrained: adapter + modules_to_save), adapters
    # (AdapterHub's adapter + the head), tensors (the trained tensors themselves), model (full FT, when asked).
    saves: str = "peft"
    grid: tuple = ()  # train.lr_grid where the method's YAML and profile name none
    refusals: Callable = _nothing  # (cfg, model config, bare model) -> problems, said before training
    targets: Callable = lambda cfg: []  # (cfg) -> [(key, module names)] that must each match a module
    virtual_tokens: Callable = _no_tokens  # positions it adds in front of every review
    callbacks: Callable = lambda cfg: []  # (cfg) -> Trainer callbacks the method needs while it trains
    # Its update folds into the base weights (peft merge_and_unload): batch-1 latency is also timed merged.
    mergeable: bool = False


def _lora_targets(cfg) -> list:
    return [("peft.lora.target_modules", cfg.peft.lora.target_modules)]


def _section_targets(section: str) -> Callable:
    return lambda cfg: [(f"peft.{section}.target_modules", getattr(cfg.peft, section).target_modules)]


REGISTRY = {m.name: m for m in (
    Method("full", "Full FT", "#1f77b4", lambda cfg, model: model, library="transformers", saves="model",
           grid=(1e-5, 2e-5, 5e-5)),
    Method("lora", "LoRA", "#d62728", _lora, "lora", LoraCfg, grid=(2e-4, 5e-4, 1e-3), targets=_lora_targets,
           mergeable=True),
    Method("dora", "DoRA", "#ff7f0e", _dora, "lora", grid=(2e-4, 5e-4, 1e-3), targets=_lora_targets,
           mergeable=True),
    Method("ia3", "(IA)³", "#2ca02c", _ia3, "ia3", Ia3Cfg, grid=(1e-3, 3e-3, 1e-2), targets=_section_targets("ia3"),
           mergeable=True),
    Method("prompt", "Prompt tuning", "#9467bd", _prompt, "prompt", PromptCfg, grid=(3e-3, 1e-2, 3e-2),
           virtual_tokens=lambda cfg: cfg.peft.prompt.num_virtual_tokens),
    Method("ptuning", "P-tuning", "#8c564b", _ptuning, "ptuning", PtuningCfg, grid=(1e-3, 3e-3, 1e-2),
           virtual_tokens=lambda cfg: cfg.peft.ptuning.num_virtual_tokens),
    Method("prefix", "Prefix tuning", "#e377c2", _prefix, "prefix", PrefixCfg, grid=(1e-3, 5e-3, 1e-2),
           refusals=_prefix_refusals, virtual_tokens=lambda cfg: cfg.peft.prefix.num_virtual_tokens),
    Method("adapter", "Adapter (seq_bn)", "#17becf", _adapter, "adapter", AdapterCfg, library="adapters",
           saves="adapters", grid=(1e-4, 5e-4, 1e-3)),
    Method("head", "Head only", "#404040", _head, library="transformers", saves="tensors", grid=(1e-3, 3e-3, 1e-2)),
    Method("bitfit", "BitFit", "#bcbd22", _bitfit, library="transformers", saves="tensors", grid=(1e-4, 3e-4, 1e-3),
           refusals=_bias_refusals),
    Method("lora_all", "LoRA (all linear)", "#8b0000", _lora, "lora", grid=(2e-4, 5e-4, 1e-3),
           targets=_lora_targets, mergeable=True),
    Method("adalora", "AdaLoRA", "#f7b6d2", _adalora, "adalora", AdaloraCfg, grid=(5e-4, 1e-3, 2e-3),
           refusals=_adalora_refusals, targets=_section_targets("adalora"), callbacks=_adalora_callbacks,
           mergeable=True),
    Method("loha", "LoHa", "#aec7e8", _loha, "loha", LohaCfg, grid=(2e-4, 5e-4, 1e-3),
           targets=_section_targets("loha"), mergeable=True),
    Method("lokr", "LoKr", "#393b79", _lokr, "lokr", LokrCfg, grid=(2e-4, 5e-4, 1e-3),
           targets=_section_targets("lokr"), mergeable=True),
    Method("vera", "VeRA", "#98df8a", _vera, "vera", VeraCfg, grid=(1e-3, 4e-3, 1e-2),
           targets=_section_targets("vera"), mergeable=True),
    Method("oft", "OFT", "#c49c94", _oft, "oft", OftCfg, grid=(1e-4, 3e-4, 1e-3), refusals=_oft_refusals,
           targets=_section_targets("oft"), mergeable=True),
    Method("fourierft", "FourierFT", "#ffbb78", _fourierft, "fourierft", FourierftCfg, grid=(1e-3, 5e-3, 1e-2),
           refusals=_fourierft_refusals, targets=_section_targets("fourierft"), mergeable=True),
    Method("lntuning", "LayerNorm tuning", "#5254a3", _lntuning, "lntuning", LntuningCfg, grid=(1e-4, 5e-4, 1e-3),
           targets=_section_targets("lntuning"), mergeable=True),
)}
METHODS = tuple(REGISTRY)


def get(method: str) -> Method:
    return REGISTRY[method]


def sections() -> dict:
    """peft.<section> -> its settings dataclass, for the schema's PeftCfg (in registry order)."""
    return {m.section: m.settings for m in REGISTRY.values() if m.settings is not None}


def label(method: str) -> str:
    return REGISTRY[method].label if method in REGISTRY else method


def color(method: str) -> str:
    return REGISTRY[method].color if method in REGISTRY else "#7f7f7f"


def library(method: str) -> str:
    return REGISTRY[method].library


def wrap(cfg, model):
    """The model a method trains: unchanged for full fine-tuning (every weight trains), else wrapped or frozen."""
    return REGISTRY[cfg.peft.method].build(cfg, model)


def virtual_tokens(cfg) -> int:
    """Positions a method adds in front of every review: prompt and p-tuning as input embeddings, prefix tuning as
    past keys/values. Either way the review's position ids start after them."""
    return REGISTRY[cfg.peft.method].virtual_tokens(cfg)


def target_lists(cfg) -> list:
    """(key, module names) a method targets by name, for the preflight check that each matches a module."""
    return REGISTRY[cfg.peft.method].targets(cfg)


def callbacks(cfg) -> list:
    """The Trainer callbacks the run's method needs (AdaLoRA's rank schedule), fresh for each run."""
    return REGISTRY[cfg.peft.method].callbacks(cfg)


def refusals(cfg, config, skeleton) -> list:
    """Why this method cannot be applied to this model, in sentences naming the key to change ([] when it can)."""
    return REGISTRY[cfg.peft.method].refusals(cfg, config, skeleton)
