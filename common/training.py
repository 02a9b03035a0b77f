"""Training: length-bucketed batches, HF Trainer, validation and test metrics, time and memory."""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import torch

from common import distributed, memory, methods, stats
from common.devices import Runtime, resolve_runtime
from common.dropout import attention_label
from common.readout import last_layer_label
from common.schema import RunCfg, report_to_names


class LengthBucketSampler(torch.utils.data.Sampler):
    """Shuffled batches of similar length: less padding, every review once per epoch, batch order random.

    Reviews are shuffled, cut into pools of 50 batches, each pool sorted by length and cut into batches,
    then all batches are shuffled. Unlike transformers' LengthGroupedSampler it does not put the longest
    batch first, and it reads lengths from a column instead of indexing every example.
    """

    def __init__(self, lengths, batch_size: int, seed: int, pool_batches: int = 50):
        self.lengths = np.asarray(lengths)
        self.batch_size, self.seed, self.pool = batch_size, seed, batch_size * pool_batches
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.lengths)

    def batches(self) -> list:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.pool):
            pool = order[start:start + self.pool]
            pool = pool[np.argsort(-self.lengths[pool], kind="stable")]
            batches += [pool[i:i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self):
        for b in self.batches():
            yield from (int(i) for i in b)


def _trainer_class(bucket_lengths):
    from transformers import Trainer

    class BucketTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            if bucket_lengths is None:
                return super()._get_train_sampler(train_dataset)
            return LengthBucketSampler(bucket_lengths, self.args.train_batch_size, self.args.seed)

    return BucketTrainer


def _model_inputs(ds):
    return ds.select_columns(["input_ids", "attention_mask", "labels"]) if ds is not None else None


def _sorted_for_eval(ds):
    """Evaluation order by length (descending): batches pad to near their own length. Returns (ds, order)."""
    order = np.argsort(-np.asarray(ds["length"]), kind="stable")
    return ds.select(order), order


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, F1 (positive class), loss = mean cross-entropy over the examples (float64), and the share of
    predictions in the majority predicted class (collapse: >= stats.COLLAPSE_SHARE)."""
    from sklearn.metrics import accuracy_score, f1_score

    logits = logits.astype(np.float64)
    logz = np.logaddexp.reduce(logits, axis=1)
    nll = logz - logits[np.arange(len(labels)), labels]
    preds = logits.argmax(axis=1)
    return {"accuracy": float(accuracy_score(labels, preds)), "f1": float(f1_score(labels, preds, zero_division=0)),
            "loss": float(nll.mean()), "majority_share": stats.majority_share(preds)}


class _ValScorer:
    """The Trainer's compute_metrics, keeping the last validation pass's predicted classes: the sweep compares two
    learning rates on the same validation reviews (paired), which resolves far smaller gaps than two intervals."""

    def __init__(self):
        self.last_pred = None

    def __call__(self, eval_pred):
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        logits = np.asarray(logits)
        self.last_pred = logits.argmax(axis=1)
        return {k: v for k, v in classification_metrics(logits, np.asarray(eval_pred.label_ids)).items()
                if k != "loss"}


def eval_every(cfg: RunCfg, n_train: int) -> int:
    """Optimizer steps between validation passes: train.evals_per_epoch evenly over an epoch (0: never)."""
    if not cfg.train.evals_per_epoch:
        return 0
    steps_per_epoch = -(-n_train // cfg.train.batch_size)  # ceil: the last, short batch is a step too
    return max(1, -(-steps_per_epoch // cfg.train.evals_per_epoch))


def build_training_args(cfg: RunCfg, runtime: Runtime, out_dir: str, has_val: bool, n_train: int, log_dir=None):
    from transformers import TrainingArguments

    t = cfg.train
    device, precision, optim = runtime.device, runtime.precision, runtime.optim
    every = eval_every(cfg, n_train) if has_val else 0
    return TrainingArguments(
        output_dir=out_dir,
        # Under torchrun the config's batch stays the global batch: each process takes its share.
        per_device_train_batch_size=distributed.per_device_batch(t.batch_size),
        per_device_eval_batch_size=max(1, t.eval_batch_size // distributed.world_size()),
        ddp_backend=("gloo" if device == "cpu" else "nccl") if distributed.world_size() > 1 else None,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps if t.max_steps else -1,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        warmup_ratio=t.warmup_ratio,
        lr_scheduler_type=t.lr_scheduler,
        seed=t.seed,
        data_seed=t.seed,
        fp16=precision == "fp16",
        bf16=precision == "bf16",
        use_cpu=device == "cpu",
        optim=optim,
        gradient_checkpointing=t.gradient_checkpointing,
        torch_compile=t.torch_compile,
        # Workers only help on CUDA, where they overlap collation with GPU work; on CPU they steal its cores.
        dataloader_num_workers=t.dataloader_workers if device == "cuda" else 0,
        dataloader_pin_memory=device == "cuda",
        dataloader_persistent_workers=device == "cuda" and t.dataloader_workers > 0,
        eval_strategy="steps" if every else "no",
        eval_steps=every or None,
        eval_on_start=bool(every),  # the curve starts at step 0: the untrained model's score is its first point
        save_strategy="no",
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        logging_first_step=True,
        report_to=report_to_names(cfg),
        logging_dir=str(log_dir) if log_dir else None,
        remove_unused_columns=False,
        disable_tqdm=False,
    )


def _load_averages():
    """The machine's 1, 5 and 15-minute load averages, or None where the system has none (Windows)."""
    return os.getloadavg() if hasattr(os, "getloadavg") else None


def train_and_evaluate(model, tokenizer, encoded: dict, cfg: RunCfg, evaluate_test: bool = True,
                       log_dir=None, runtime: Runtime = None) -> dict:
    """Train with HF Trainer; return metrics, test predictions, learning curves, time and memory. log_dir: where
    train.report_to's integrations write (TensorBoard events). runtime: the auto settings as planning decided them
    (resolved here only for a caller outside a plan)."""
    from transformers import DataCollatorWithPadding

    runtime = runtime or resolve_runtime(cfg, model.config.model_type)
    device, precision = runtime.device, runtime.precision
    t = cfg.train
    # On CUDA pad each batch to a multiple of 16: length-grouped batches otherwise have odd lengths, which
    # miss tensor-core-friendly GEMM shapes and the aligned-mask fast paths of fused attention (a likely cause of
    # the reference's slow group_by_length run; not yet confirmed on a GPU), and it bounds distinct shapes to 256/16.
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=16 if device == "cuda" else None)
    lengths = np.asarray(encoded["train"]["length"])  # read once: buckets, and the real-token count below
    bucket = lengths if t.length_buckets and t.padding == "dynamic" else None
    val = encoded.get("val")
    val_sorted, val_order = _sorted_for_eval(val) if val is not None else (None, None)
    scorer = _ValScorer()
    with tempfile.TemporaryDirectory(prefix="imdb-peft-trainer-") as tmp:
        args = build_training_args(cfg, runtime, tmp, val is not None, len(encoded["train"]), log_dir)
        trainer = _trainer_class(bucket)(
            model=model, args=args, train_dataset=_model_inputs(encoded["train"]),
            eval_dataset=_model_inputs(val_sorted), data_collator=collator, compute_metrics=scorer,
            callbacks=methods.callbacks(cfg))
        allocator = None  # CPU only: the host allocator is off a CUDA step's path
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        else:
            allocator = memory.set_allocator(runtime.allocator)
            memory.release_freed()
            memory.reset_peak_rss()
            rss_start = memory.rss_mib()
        load_start = _load_averages()
        t0 = time.perf_counter()
        trainer.train()
        if device == "cuda":
            torch.cuda.synchronize()
        train_wall = time.perf_counter() - t0
        load_end = _load_averages()
        history = trainer.state.log_history
        val_time = sum(h.get("eval_runtime", 0.0) for h in history)
        evals = [h["step"] for h in history if "eval_loss" in h]
        t0 = time.perf_counter()
        if args.eval_strategy != "no" and (not evals or evals[-1] != trainer.state.global_step):
            trainer.evaluate()  # the final model is always scored: the sweep ranks it (outside the train time)
        final_eval = time.perf_counter() - t0
        out = {"metrics": {}, "predictions": None}
        if scorer.last_pred is not None:  # the final model's validation predictions, in the split's order
            val_pred = np.empty_like(scorer.last_pred)
            val_pred[val_order] = scorer.last_pred
            out["val_predictions"] = {"row": np.asarray(val["row"]), "label": np.asarray(val["labels"]),
                                      "pred": val_pred}
        if evaluate_test:
            test_sorted, order = _sorted_for_eval(encoded["test"])
            t0 = time.perf_counter()
            pred = trainer.predict(_model_inputs(test_sorted))
            eval_time = time.perf_counter() - t0
            logits = np.empty_like(pred.predictions)
            logits[order] = pred.predictions  # back to the split's order
            labels = np.asarray(encoded["test"]["labels"])
            out["metrics"].update(classification_metrics(logits, labels))
            out["metrics"]["collapsed"] = stats.is_collapsed(out["metrics"]["majority_share"])
            out["metrics"]["eval_time_s"] = round(eval_time, 3)
            probs = torch.softmax(torch.from_numpy(logits.astype(np.float32)), dim=1)[:, 1].numpy()
            out["predictions"] = {"row": np.asarray(encoded["test"]["row"]), "label": labels,
                                  "pred": logits.argmax(axis=1), "prob_pos": probs}
    train_time = train_wall - val_time
    n_seen = trainer.state.global_step * t.batch_size if t.max_steps else len(encoded["train"]) * t.epochs
    # Real (non-pad) tokens trained on: the benchmark's MFU counts these, not padding.
    real_tokens = int(lengths.sum() * t.epochs) if not t.max_steps else int(lengths.mean() * n_seen)
    m = out["metrics"]
    m.update({
        "train_time_s": round(train_time, 3),
        "train_wall_s": round(train_wall, 3),
        "val_eval_time_s": round(val_time, 3),
        "train_samples_per_s": round(min(n_seen, len(encoded["train"]) * t.epochs) / train_time, 3),
        "train_steps": trainer.state.global_step,
        "train_real_tokens": real_tokens,
        "final_train_loss": next((h["train_loss"] for h in reversed(history) if "train_loss" in h), None),
    })
    # Where train_and_evaluate's time went: optimizer steps, the validation passes during training, the final
    # model's validation pass when the last one fell before the end, the test pass.
    # The machine's load averages (1, 5, 15 min) around training, and its cores: a run that shared the CPU with
    # other work trains slower, and its time says so only beside these (a lone 2-thread run holds the load near 2).
    if load_start is not None:
        m["cpu_load"] = {"cores": os.cpu_count(), "start": [round(x, 2) for x in load_start],
                         "end": [round(x, 2) for x in load_end]}
    out["phases_s"] = {"train_s": round(train_time, 3), "validation_s": round(val_time, 3),
                       "final_validation_s": round(final_eval, 3), "test_s": m.get("eval_time_s", 0.0)}
    if device == "cuda":
        m["peak_mem_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        m["peak_mem_reserved_mib"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
    else:
        # The kernel syncs its per-thread RSS counters lazily, so VmHWM can trail a VmRSS read earlier by a page or
        # two (883.7 against 883.8 MiB once): the peak is at least what the run started with.
        m["peak_rss_mib"] = round(max(memory.peak_rss_mib(), rss_start or 0.0), 1)
        if rss_start is not None:  # the model, data and libraries already resident when training began
            m["rss_start_mib"] = round(rss_start, 1)
    if distributed.world_size() > 1:  # every rank's peak; the scalar columns above are rank 0's
        key = "peak_mem_allocated_mib" if device == "cuda" else "peak_rss_mib"
        m["peak_mem_per_rank_mib"] = distributed.gather(m[key])
    curves = [{"step": h["step"], "epoch": h["epoch"], "val_loss": h.get("eval_loss"),
               "val_accuracy": h.get("eval_accuracy"), "val_majority_share": h.get("eval_majority_share")}
              for h in history if "eval_loss" in h]
    if curves:
        m["val_accuracy"] = curves[-1]["val_accuracy"]
        m["val_loss"] = curves[-1]["val_loss"]
        m["val_majority_share"] = curves[-1]["val_majority_share"]
        m["val_collapsed"] = stats.is_collapsed(m["val_majority_share"])
    train_curve = [{"step": h["step"], "epoch": h.get("epoch"), "loss": h["loss"]} for h in history if "loss" in h]
    out.update({"device": device, "precision": precision, "dropout_kernel": runtime.dropout_kernel,
                "optim": runtime.optim, "allocator": allocator,
                "world_size": distributed.world_size(),
                "attn_implementation": attention_label(model), "last_layer": last_layer_label(model),
                "curves": {"val": curves, "train": train_curve}})
    if "tensorboard" in report_to_names(cfg) and log_dir and distributed.is_main():
        log_hparams(log_dir, cfg, m)
    return out


def log_hparams(log_dir, cfg: RunCfg, metrics: dict) -> None:
    """The resolved config as TensorBoard hyperparameters (HParams tab), with the run's final metrics beside it,
    in the run's own log folder: runs of a grid can then be compared by any config key."""
    from torch.utils.tensorboard import SummaryWriter  # lazy: tensorboard only when train.report_to asks for it

    flat = {}

    def walk(d: dict, prefix: str = "") -> None:
        for k, v in d.items():
            if isinstance(v, dict) and k != "config_overrides":
                walk(v, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)

    walk(cfg.to_dict())
    final = {f"final/{k}": float(v) for k, v in metrics.items()
             if k in ("accuracy", "loss", "val_accuracy", "val_loss", "train_time_s") and v is not None}
    with SummaryWriter(str(log_dir)) as writer:
        writer.add_hparams(flat, final, run_name=".")
