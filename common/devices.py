"""Devices: what the `auto` settings (device, precision, dropout kernel, attention) resolve to; the CPU budget."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from common.dropout import TRAIN_EAGER_MODEL_TYPES
from common.errors import UserError
from common.readout import READOUT_MODEL_TYPES
from common.schema import FAST_DROPOUT_BITS, RunCfg

# Training throughput of the 2-core development CPU, measured: MiniLM-L6 (22.7M params), 2,000 reviews x ~105
# real tokens, 1 epoch, fp32, in ~125 s = 6 * 22.7e6 * 2000 * 105 / 125 ~ 2.3e11 FLOP/s. Rounded down a little.
CPU_FLOPS = 2e11
CPU_SEED_SIZED_HOURS = 0.5  # above this estimate a CPU run needs train.allow_cpu: true


def pick_device(cfg: RunCfg) -> str:
    want = cfg.train.device
    if want == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device: cuda requested but no CUDA GPU is visible")
    return "cuda" if want == "auto" and torch.cuda.is_available() else ("cpu" if want == "auto" else want)


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 / AMX: oneDNN runs bf16 matmuls natively (measured here: 1.45x faster training steps).
    IMDB_PEFT_CPU_BF16=0 treats the CPU as one without them, so `auto` trains in fp32 as on an AVX2-only CPU: the
    way to check on one machine that the tests hold at both precisions (`IMDB_PEFT_CPU_BF16=0 make test`)."""
    if os.environ.get("IMDB_PEFT_CPU_BF16", "").strip() == "0":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_precision(cfg: RunCfg, device: str) -> str:
    """auto: bf16 where the hardware runs it natively (GPU or CPU; no loss scaling needed), else fp16 on CUDA
    and fp32 on CPU. bf16 autocast keeps fp32 master weights and optimizer state, like the reference's fp16."""
    p = cfg.train.precision
    if device == "cpu":
        if p == "fp16":
            raise UserError("train.precision: fp16 needs a CUDA GPU; use auto, fp32 or bf16 on CPU")
        if p == "auto":
            return "bf16" if cpu_has_native_bf16() else "fp32"
        return p
    if p == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if p == "bf16" and not torch.cuda.is_bf16_supported():
        raise UserError(f"train.precision: bf16 is not supported by {torch.cuda.get_device_name()}")
    return p


def pick_dropout_kernel(cfg: RunCfg, device: str) -> str:
    """auto: the fast mask kernel on CPU (dropout was 45% of a LoRA step there) with SFC64's words, torch's own on
    CUDA. SFC64's against torch's words, on the 2-core AMD EPYC Zen 3 (AVX2, fp32), 24 interleaved rounds in one
    process (bench.cpu_kernels, 2026-12-01): LoRA step 1,153 vs 1,209 ms (torch's slower in 18 of 24 rounds), full
    FT 1,530 vs 1,586 ms (14 of 24)."""
    k = cfg.train.dropout_kernel
    return ("fast_sfc64" if device == "cpu" else "torch") if k == "auto" else k


def uses_fast_dropout(cfg: RunCfg, device: str) -> bool:
    """Whether the run's dropout is FastDropout (either source of bits)."""
    return pick_dropout_kernel(cfg, device) in FAST_DROPOUT_BITS


def pick_optim(cfg: RunCfg, device: str) -> str:
    """auto: fused AdamW wherever torch has it (CUDA; CPU from torch 2.4), measured faster on both: on the 2-core
    AMD EPYC the quick-profile full-FT step's optimizer took 8 ms fused vs 57 ms foreach (bench.cpu_kernels)."""
    if cfg.train.optim != "auto":
        return cfg.train.optim
    fused_on_cpu = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 4)
    return "adamw_torch_fused" if device == "cuda" or fused_on_cpu else "adamw_torch"


def pick_allocator(cfg: RunCfg, device: str) -> str:
    """auto: reuse on CPU, system on CUDA, where the host allocator is off the step's path. Measured on the 2-core
    AMD EPYC Zen 3 (AVX2, fp32), whole quick-profile full-FT runs (94 steps), six alternating pairs, 2026-12-01
    16:58-17:31 UTC: training 119.1 s mean with reuse vs 131.2 with glibc's defaults (system slower in 5 of 6
    pairs, 1.10x on average; whole process 146.2 vs 158.8 s), system time 2.5 vs 15.7 s, page faults 0.38 vs 4.76 M,
    the same accuracy to the digit. (Three pairs that morning had shown no gain; on the AMD EPYC with AVX512-BF16,
    in one process, 542 vs 547 ms a step.)"""
    a = cfg.train.allocator
    return ("reuse" if device == "cpu" else "system") if a == "auto" else a


def pick_attention(cfg: RunCfg, device: str, model_type: str) -> str:
    """auto: sdpa; with the fast dropout kernel, models other than BERT are built eager so that their
    attention-probability dropout uses it too (BERT keeps SDPA and trains eager: build_model)."""
    a = cfg.model.attn_implementation
    if a != "auto":
        return a
    fast = uses_fast_dropout(cfg, device)
    return "eager" if fast and model_type not in TRAIN_EAGER_MODEL_TYPES else "sdpa"


def last_layer_problem(model_type: str, dropout_kernel: str = None):
    """Why the last layer cannot compute the head's row only (None when it can); dropout_kernel None: not known
    here."""
    if model_type not in READOUT_MODEL_TYPES:
        return f"model.last_layer: cls reads a BERT-style model's [CLS] row; {model_type} classifies its own way"
    if dropout_kernel is not None and dropout_kernel not in FAST_DROPOUT_BITS:
        return ("model.last_layer: cls needs a fast train.dropout_kernel (auto on CPU): it draws the skipped rows' "
                "dropout masks too, so the run's random stream stays the same; torch's kernel cannot")
    return None


def pick_last_layer(cfg: RunCfg, device: str, model_type: str) -> str:
    """auto: cls wherever it is the same computation (last_layer_problem is None), else full. Measured on the
    2-core AMD EPYC (bench.cpu_kernels, quick profile, full FT, batch 16 x 128): 553 -> 508 ms a training step,
    641 -> 571 ms to evaluate 64 reviews."""
    want = cfg.model.last_layer
    if want == "auto":
        return "full" if last_layer_problem(model_type, pick_dropout_kernel(cfg, device)) else "cls"
    return want


@dataclass(frozen=True)
class Runtime:
    """Every `auto` setting of a run as decided once, at planning, on the machine that plans it: training, the
    model builder and the record read these values and never decide again."""

    device: str
    precision: str
    dropout_kernel: str
    optim: str
    allocator: str
    attention: str  # the attention implementation the base model is built with
    last_layer: str  # full | cls

    def identity(self) -> dict:
        """The part of a run's identity that auto settings decide (what every record has held): these change the
        numbers a run computes; the others compute the same maths (common/records.py)."""
        return {"device_type": self.device, "precision": self.precision, "dropout_kernel": self.dropout_kernel}

    @property
    def fast_dropout(self) -> bool:
        return self.dropout_kernel in FAST_DROPOUT_BITS


def resolve_runtime(cfg: RunCfg, model_type: str, strict: bool = True) -> Runtime:
    """What the `auto` settings become on this machine, decided here and nowhere else (the pick_* functions' one
    caller). strict=False (dry runs) keeps the configured values where they cannot be resolved here
    (train.device=cuda on a machine without a GPU)."""
    try:
        device = pick_device(cfg)
        precision = pick_precision(cfg, device)
    except UserError:
        if strict:
            raise
        t = cfg.train
        return Runtime(t.device, t.precision, t.dropout_kernel, t.optim, t.allocator,
                       cfg.model.attn_implementation, cfg.model.last_layer)
    return Runtime(device, precision, pick_dropout_kernel(cfg, device), pick_optim(cfg, device),
                   pick_allocator(cfg, device), pick_attention(cfg, device, model_type),
                   pick_last_layer(cfg, device, model_type))


def estimate_cpu_hours(cfg: RunCfg, n_train: int, n_params: int, mean_tokens: float) -> float:
    """Rough CPU training time: 6 FLOPs per parameter per token (forward + backward), at CPU_FLOPS."""
    steps_tokens = n_train * cfg.train.epochs * mean_tokens
    return 6.0 * n_params * steps_tokens / CPU_FLOPS / 3600.0


def check_cpu_budget(cfg: RunCfg, device: str, n_train: int, n_params: int, max_length: int) -> None:
    if device != "cpu" or cfg.train.allow_cpu:
        return
    # IMDb reviews average ~230 tokens: at max_length 256 about 80% of slots are real tokens.
    hours = estimate_cpu_hours(cfg, n_train, n_params, 0.8 * max_length)
    if hours > CPU_SEED_SIZED_HOURS:
        raise UserError(
            f"train.device: no GPU here, and this run ({n_train:,} reviews x {cfg.train.epochs} epochs, "
            f"{n_params / 1e6:.0f}M parameters) would take about {hours:.1f} h on this CPU. Use `PROFILE=quick` "
            f"for a CPU-sized run, or go ahead explicitly with `--set train.allow_cpu=true`.")
