"""Dropout with cheaper random bits for CPUs: same keep probability and scaling, 16 random bits per element.

Why: on a CPU, torch's dropout draws each mask element with bernoulli_, about 7 ns per element here; a BERT
LoRA step of MiniLM-L6 at batch 16 x 128 tokens masks 38.5M elements (attention probabilities 6 x 16x12x128x128
= 18.9M, hidden states 13 x 16x128x384 = 10.2M, LoRA inputs 12 x 16x128x384 = 9.4M), and bernoulli_ took 45% of
the step on a 2-core CPU (torch.profiler). This kernel draws 64-bit words from the same
torch generator (so `train.seed` still fixes every mask) and cuts each into four 16-bit uniforms. Only the
random stream differs: the drop probability is p rounded to a multiple of 1/65536 (0.1 -> 0.1000061) and kept
values are scaled by 1/(1-p) of that rounded p, so the output is unbiased exactly as torch's is. On CUDA
torch's fused dropout is cheap and is kept (`train.dropout_kernel: auto`).

Two sources of those bits (`train.dropout_kernel`): `fast` takes them from torch's generator itself (mt19937, one
word at a time); `fast_sfc64` takes one 64-bit seed from torch's generator per mask and draws the mask's words from
numpy's SFC64 generator seeded with it, so `train.seed` (and a checkpoint's saved torch state) still fixes every
mask, in a different stream from `fast`'s. On the 2-core Zen 3 that made the masks 5% of a profiled LoRA step and a
LoRA step 1.05x faster (study/bench/2026-12-01T2135-cpu-kernels.md).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import math

import numpy as np
import torch

from common.schema import FAST_DROPOUT_BITS

RESOLUTION = 65536  # one 16-bit uniform per element
SFC64_WORDS = "dropout: SFC64 words"  # the profiler's name for random_words' numpy part


def rounded_p(p: float) -> float:
    """The drop probability the fast kernel realises for a requested p."""
    return round(p * RESOLUTION) / RESOLUTION


def random_words(count: int, bits: str = "torch", device="cpu") -> torch.Tensor:
    """`count` int64 words, all 64 bits uniform, from torch's default generator (bits torch) or from SFC64 seeded by
    one draw of it (bits sfc64)."""
    # random_(-2**63, None) is torch's full-range path: all 64 bits uniform, i.e. four uniform int16 per word.
    if bits == "torch":
        return torch.empty(count, dtype=torch.int64, device=device).random_(-2**63, None)
    seed = int(torch.empty((), dtype=torch.int64).random_(-2**63, None)) & (2**64 - 1)
    # SFC64 (a 256-bit-state generator that passes PractRand, numpy's fastest): its seed goes through numpy's
    # SeedSequence, ~15 us a mask, against ~1 ms of words for a hidden-state mask (16 x 128 x 384 / 4 words).
    # Named for torch.profiler (bench.cpu_kernels --profile sorts it with the masks' work): numpy runs no aten op.
    with torch.profiler.record_function(SFC64_WORDS):
        words = torch.from_numpy(np.random.SFC64(seed).random_raw(count).view(np.int64))
    return words if torch.device(device).type == "cpu" else words.to(device)


def keep_mask(shape, p: float, device="cpu", bits: str = "torch") -> torch.Tensor:
    """bool mask, True = keep with probability 1 - rounded_p(p), from random_words(bits)."""
    n = 1
    for s in shape:
        n *= int(s)
    words = random_words((n + 3) // 4, bits, device)
    # An int16 uniform on [-32768, 32767] falls below -32768 + k with probability k / 65536. A scalar
    # threshold keeps the compare vectorised (a per-chunk threshold tensor made it 3.5x slower).
    keep = words.view(torch.int16)[:n] >= -32768 + round(p * RESOLUTION)
    return keep.view(tuple(shape))


# Rows of the sequence the enclosing layer was given, while it computes fewer (common/readout.py): a hidden state
# with fewer rows has its mask drawn at this many rows and sliced, so the generator advances exactly as for the
# whole layer and every later mask of the run is the one it would have been.
_MASK_ROWS: contextvars.ContextVar = contextvars.ContextVar("mask_rows", default=None)


@contextlib.contextmanager
def masks_drawn_at_rows(rows: int):
    """Inside: FastDropout draws the mask of a (batch, fewer rows, width) tensor at `rows` rows and uses the first."""
    token = _MASK_ROWS.set(int(rows))
    try:
        yield
    finally:
        _MASK_ROWS.reset(token)


class _KeepWhere(torch.autograd.Function):
    # x where the keep mask is set, else 0, times `scale` (1.0: left to the caller, who may scale a smaller tensor
    # instead). torch.where reads the 1-byte bool mask as it is; multiplying by the mask would first widen it to
    # x's dtype, one more pass over x-sized memory each way. Saves the bool mask (1 byte per element, as torch's
    # dropout). The scale is a Python float applied by mul_ in fp32 arithmetic, so bf16 tensors are not scaled by a
    # bf16-rounded 1/(1-p).

    @staticmethod
    def forward(ctx, x, keep, scale=1.0):
        ctx.scale = scale
        ctx.save_for_backward(keep)
        out = torch.where(keep, x, 0.0)
        return out if scale == 1.0 else out.mul_(scale)

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        out = torch.where(keep, grad, 0.0)
        return (out if ctx.scale == 1.0 else out.mul_(ctx.scale)), None, None


class FastDropout(torch.nn.Module):
    """Drop-in for nn.Dropout (not in-place); identity in eval mode or at p = 0. bits: random_words' source."""

    def __init__(self, p: float, bits: str = "torch"):
        super().__init__()
        self.p = float(p)
        self.bits = bits

    def forward(self, x):
        if not self.training or rounded_p(self.p) == 0.0:
            return x
        rows = _MASK_ROWS.get()
        if rows is not None and x.dim() == 3 and x.shape[1] < rows:  # hidden states cut to fewer rows
            # the whole layer's mask, of which these rows are the first (masks_drawn_at_rows)
            keep = keep_mask((x.shape[0], rows, *x.shape[2:]), self.p, x.device, self.bits)[:, :x.shape[1]]
        else:
            keep = keep_mask(x.shape, self.p, x.device, self.bits)
        return _KeepWhere.apply(x, keep, 1.0 / (1.0 - rounded_p(self.p)))

    def extra_repr(self) -> str:
        return f"p={self.p} (realised {rounded_p(self.p):.7f}), bits={self.bits}"


def swap_dropout(model: torch.nn.Module, kernel: str = "fast") -> int:
    """Replace every nn.Dropout of the model (peft's LoRA dropout included) by FastDropout with the bits of
    `kernel` (FAST_DROPOUT_BITS); returns how many.

    Attention-probability dropout is only a module in the eager attention classes; SDPA applies it inside its
    kernel. Hence `model.attn_implementation: auto` with this kernel: BERT keeps SDPA for evaluation and trains
    through its eager path (eager_attention_in_training); other models are built eager.
    """
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            # p >= 1 - 1/131072 rounds to 1, past the int16 threshold; p = 1 (drop everything) is left to torch.
            if type(child) is torch.nn.Dropout and rounded_p(child.p) < 1.0 and not child.inplace:
                setattr(parent, name, FastDropout(child.p, FAST_DROPOUT_BITS[kernel]))
                swapped += 1
    return swapped


def bert_attention_in_training(self, hidden_states, attention_mask=None, past_key_values=None, cache_position=None):
    """BERT's eager self-attention (absolute positions, no head mask) with FastDropout on the probabilities, in fewer
    passes over the (batch, heads, queries, keys) tensors; the same random draws and, up to rounding, the same maths.

    Why: those tensors are 4x the hidden states (MiniLM-L6 at 16 x 128 tokens: 16 x 12 x 128 x 128 = 3.1M elements
    a layer vs 16 x 128 x 384 = 0.79M), and BERT's eager path passes over them five times forward (scale, softmax,
    widen the mask, multiply, rescale) and five back, at DRAM speed (~5 ms a pass here). This one takes two each
    way (softmax and a masked select, + the additive mask where a batch is padded): 1/sqrt(head size) scales the
    queries and 1/(1-p) the context, both (batch, heads, queries, head size), a quarter of the size.
    `self.query_rows` (set on the last layer by common/readout.py) computes only the first query rows; their masks
    are cut from the whole layer's, so the random stream is the one the whole layer draws.
    """
    from transformers.cache_utils import EncoderDecoderCache  # lazy: transformers only where BERT is built

    batch, length, _ = hidden_states.shape
    heads, size = self.num_attention_heads, self.attention_head_size
    rows = getattr(self, "query_rows", None) or length
    query = self.query(hidden_states[:, :rows]) * (1.0 / math.sqrt(size))
    query = query.view(batch, rows, heads, size).transpose(1, 2)
    key = self.key(hidden_states).view(batch, length, heads, size).transpose(1, 2)
    value = self.value(hidden_states).view(batch, length, heads, size).transpose(1, 2)
    if past_key_values is not None:  # prefix tuning: the prefix's keys and values go in front, as in BERT's own path
        cache = past_key_values.self_attention_cache if isinstance(past_key_values, EncoderDecoderCache) \
            else past_key_values
        key, value = cache.update(key, value, self.layer_idx, {"cache_position": cache_position})
    scores = torch.matmul(query, key.transpose(-1, -2))
    if attention_mask is not None:
        scores = scores + (attention_mask[:, :, :rows] if attention_mask.shape[2] > 1 else attention_mask)
    probs = torch.softmax(scores, dim=-1)
    p = self.dropout.p
    keep = keep_mask((batch, heads, length, key.shape[2]), p, probs.device, self.dropout.bits)[:, :, :rows]
    context = torch.matmul(_KeepWhere.apply(probs, keep), value) * (1.0 / (1.0 - rounded_p(p)))
    return context.permute(0, 2, 1, 3).reshape(batch, rows, heads * size), None


# Model types whose SDPA attention eager_attention_in_training can route through the eager path while training.
TRAIN_EAGER_MODEL_TYPES = ("bert",)


@functools.lru_cache(maxsize=None)
def _train_eager_bert_attention():
    from transformers.models.bert.modeling_bert import BertSdpaSelfAttention, BertSelfAttention

    class TrainEagerBertSdpaSelfAttention(BertSdpaSelfAttention):
        """SDPA when evaluating; eager attention while training, whose attention-probability dropout is the module
        self.dropout (so swap_dropout reaches it): with FastDropout there, bert_attention_in_training, else BERT's
        own eager forward. Same parameters, same masks (SDPA's additive 4D mask is what the eager path adds to its
        scores), same maths."""

        def forward(self, hidden_states, attention_mask=None, head_mask=None, encoder_hidden_states=None,
                    past_key_values=None, output_attentions=False, cache_position=None):
            if not (self.training and self.dropout_prob > 0):
                return super().forward(hidden_states, attention_mask, head_mask, encoder_hidden_states,
                                       past_key_values, output_attentions, cache_position)
            if isinstance(self.dropout, FastDropout) and rounded_p(self.dropout.p) > 0 and head_mask is None \
                    and encoder_hidden_states is None and not output_attentions \
                    and self.position_embedding_type == "absolute":
                return bert_attention_in_training(self, hidden_states, attention_mask, past_key_values,
                                                  cache_position)
            return BertSelfAttention.forward(self, hidden_states, attention_mask, head_mask, encoder_hidden_states,
                                             past_key_values, output_attentions, cache_position)

    return TrainEagerBertSdpaSelfAttention


def eager_attention_in_training(model: torch.nn.Module) -> int:
    """BERT's SDPA attention modules become eager while training only; returns how many were changed.

    Why not eager throughout: evaluation has no dropout, and SDPA's fused CPU kernel evaluated MiniLM-L6 at
    8.7 ms per review against eager's 16.3 (eval batch 64 x 128 tokens, this machine).
    """
    try:
        from transformers.models.bert.modeling_bert import BertSdpaSelfAttention
    except ImportError:  # pragma: no cover - transformers without BERT's SDPA class
        return 0
    changed = 0
    for module in model.modules():
        if type(module) is BertSdpaSelfAttention:
            module.__class__ = _train_eager_bert_attention()
            changed += 1
    return changed


def attention_label(model: torch.nn.Module) -> str:
    """What attention the run used: the model's implementation, and whether training switched to eager."""
    name = model.config._attn_implementation
    if name == "sdpa" and any(isinstance(m, _train_eager_bert_attention()) for m in model.modules()):
        return f"{name} (eager while training)"
    return name
