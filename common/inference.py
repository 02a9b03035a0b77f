"""Inference cost of a trained model: test throughput, batch-1 latency (LoRA also merged), predictions for new text."""
from __future__ import annotations

import contextlib
import copy
import statistics
import time

import numpy as np
import torch

from common import methods

LATENCY_REVIEWS = 32  # reviews timed one at a time (the test split's first ones): the median is over these
LATENCY_WARMUP = 3  # untimed passes first: allocator, oneDNN/cuBLAS kernel choice, caches


def autocast(device: str, precision: str):
    """The precision the run trained and evaluated in: bf16/fp16 autocast, or nothing for fp32."""
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device_type=device, dtype=dtype)
    return contextlib.nullcontext()


def _sync(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def one_thread_on_cpu(device: str):
    """Batch-1 latency on a CPU is timed on one intra-op thread (one request per core, as CPU serving runs them).
    Why: on the shared 2-core machine a second busy process made each tiny op wait for the other thread (a
    2-layer test model: 1.3 ms per review on one thread, 3.6 to 180 ms on two, depending on that process)."""
    if device != "cpu":
        yield 0
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield 1
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def timed_logits(model, input_ids: list, device: str, precision: str) -> tuple:
    """Each review alone (batch 1, no padding: what one request to a served model computes), after LATENCY_WARMUP
    untimed passes: (median milliseconds, logits[review, class]). The logits let the merge check compare merged
    and unmerged models without running either again."""
    model.eval()
    times, logits = [], []
    with autocast(device, precision), one_thread_on_cpu(device):
        for k, ids in enumerate([input_ids[0]] * LATENCY_WARMUP + list(input_ids)):
            x = torch.tensor([ids], device=device)
            mask = torch.ones_like(x)
            _sync(device)
            t0 = time.perf_counter()
            out = model(input_ids=x, attention_mask=mask).logits
            _sync(device)
            if k >= LATENCY_WARMUP:
                times.append(1000 * (time.perf_counter() - t0))
                logits.append(out.float().cpu().numpy()[0])
    return statistics.median(times), np.stack(logits)


def merged_copy(model):
    """The model with its PEFT update folded into the base weights (merge_and_unload), on a copy. Each
    modules_to_save wrapper (the classifier, the pooler with peft.train_pooler) is first swapped for its trained
    module: peft 0.21's generic unloader, which IA3 uses, copies `.weight` from every wrapper it replaces and fails
    on a module without one ('BertPooler' object has no attribute 'weight'; huggingface/peft#3213)."""
    from peft.utils import ModulesToSaveWrapper  # lazy: peft only where a run merges

    model = copy.deepcopy(model)
    wrapped = [(n, m) for n, m in model.named_modules() if isinstance(m, ModulesToSaveWrapper)]
    for name, wrapper in wrapped:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, wrapper.modules_to_save[wrapper.active_adapters[0]])
    return model.merge_and_unload()


def measure_inference(model, method: str, test_ds, metrics: dict, device: str, precision: str) -> dict:
    """Throughput of the test pass (reviews/s at the eval batch size, from its timed prediction) and the median
    batch-1 latency over LATENCY_REVIEWS test reviews after LATENCY_WARMUP passes; for LoRA-style methods also
    merged into the base weights (on a copy), with the largest logit difference merging made over those reviews."""
    ids = [list(x) for x in test_ds.select(range(min(LATENCY_REVIEWS, len(test_ds))))["input_ids"]]
    latency, logits = timed_logits(model, ids, device, precision)
    out = {"test_reviews_per_s": round(len(test_ds) / metrics["eval_time_s"], 2) if metrics.get("eval_time_s")
           else None,
           "latency_ms": round(latency, 3),
           "latency_reviews": len(ids), "latency_warmup": LATENCY_WARMUP,
           "latency_threads": 1 if device == "cpu" else None, "latency_tokens_mean":
               round(float(np.mean([len(x) for x in ids])), 1), "latency_merged_ms": None}
    if methods.get(method).mergeable and hasattr(model, "merge_and_unload"):
        merged_latency, merged_logits = timed_logits(merged_copy(model), ids, device, precision)
        out["latency_merged_ms"] = round(merged_latency, 3)
        # Over the same reviews, from the timed passes themselves: the check runs no model again.
        out["merge_max_abs_logit_diff"] = float(np.abs(merged_logits - logits).max())
    return out
