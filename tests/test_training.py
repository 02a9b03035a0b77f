"""Training pieces: the length-bucket sampler, device/precision/optimizer/allocator choice, metrics, the allocator."""
import dataclasses
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.devices import cpu_has_native_bf16, pick_allocator, pick_optim, pick_precision
from common.errors import UserError
from common.schema import RunCfg, TrainCfg
from common.training import LengthBucketSampler, classification_metrics


def test_bucket_sampler_visits_every_review_once_in_similar_length_batches():
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 256, 1000)
    s = LengthBucketSampler(lengths, batch_size=16, seed=3, pool_batches=10)
    order = list(s)
    assert sorted(order) == list(range(1000))
    batches = s.batches()
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    random_spread = np.mean([lengths[i:i + 16].max() - lengths[i:i + 16].min() for i in range(0, 1000, 16)])
    assert spread < random_spread / 4  # far less padding than random batches
    first = [int(b[0]) for b in batches]
    assert lengths[first[0]] != lengths.max() or lengths[first[1]] != lengths.max()  # not longest-first
    s.set_epoch(1)
    assert list(s) != order  # reshuffled each epoch
    assert list(LengthBucketSampler(lengths, 16, seed=3, pool_batches=10)) == order  # deterministic by seed


def test_precision_choice_on_cpu():
    cfg = RunCfg(part="part1")
    assert pick_precision(cfg, "cpu") == ("bf16" if cpu_has_native_bf16() else "fp32")
    fp32 = dataclasses.replace(cfg, train=TrainCfg(precision="fp32"))
    assert pick_precision(fp32, "cpu") == "fp32"
    with pytest.raises(UserError, match="train.precision"):
        pick_precision(dataclasses.replace(cfg, train=TrainCfg(precision="fp16")), "cpu")


def test_metrics_loss_is_mean_cross_entropy():
    logits = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    labels = np.array([0, 0, 1])
    m = classification_metrics(logits, labels)
    expected = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(3.0)), np.log(2.0)])
    assert m["loss"] == pytest.approx(expected) and m["accuracy"] == pytest.approx(1 / 3)


def test_auto_picks_fused_adamw_and_the_reusing_allocator_on_cpu():
    cfg = RunCfg(part="part1")
    assert pick_optim(cfg, "cpu") == "adamw_torch_fused" and pick_optim(cfg, "cuda") == "adamw_torch_fused"
    assert pick_allocator(cfg, "cpu") == "reuse" and pick_allocator(cfg, "cuda") == "system"
    plain = dataclasses.replace(cfg, train=TrainCfg(optim="adamw_torch", allocator="system"))
    assert pick_optim(plain, "cpu") == "adamw_torch" and pick_allocator(plain, "cpu") == "system"


# Run in a fresh interpreter: glibc serves a big block from free heap memory before it maps a new one, so in a
# process where earlier tests trained (under reuse, which grows the heap) 'system' would fault nothing either.
_FAULTS = """
import resource, statistics, sys, torch
from common import memory
def faults():  # minor page faults of one allocate-touch-free of a 64 MiB block (over glibc's 32 MiB mmap ceiling)
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 * 2**20).sum()  # 16 Mi float32 = 64 MiB, touched, then freed
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
assert memory.set_allocator(sys.argv[1]) == sys.argv[1]
# The median of 8 after 4: under reuse glibc's heap takes a few blocks to settle and now and then faults one in again
# (measured: the first 3 faulted, then none; 1 in 4 later in one CI run), under its defaults every block faults.
[faults() for _ in range(4)]
print(statistics.median(faults() for _ in range(8)))
"""


def _faults_per_big_block(allocator: str) -> float:
    out = subprocess.run([sys.executable, "-c", _FAULTS, allocator], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return float(out.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator settings are glibc's")
def test_reuse_allocator_stops_faulting_in_freed_memory_again():
    system, reuse = _faults_per_big_block("system"), _faults_per_big_block("reuse")
    assert system > 10_000  # 64 MiB / 4 KiB pages = 16,384 faults each time
    assert reuse < system / 20, (system, reuse)


def test_auto_settings_are_decided_once_at_planning(tiny_data, tmp_path, capsys, monkeypatch):
    """Device, precision, kernels, allocator, attention and last layer: resolved once per run by planning into a
    frozen value that the model builder, training and the record read; nothing asks the machine again."""
    import json

    import common.devices as devices

    from conftest import run_main, tiny_args

    calls = []
    real = devices.pick_device
    monkeypatch.setattr(devices, "pick_device", lambda cfg: calls.append(1) or real(cfg))
    out = tmp_path / "results"
    rc, _, err = run_main("part1", tiny_args("part1", tiny_data, out, configs=["configs/part1_distilbert_lora.yaml"]),
                          capsys)
    assert rc == 0, err
    assert len(calls) == 1  # the plan's resolve_runtime; the model builder, training and the record read its value
    rec = json.loads(next((out / "runs").glob("*.json")).read_text())
    resolved = rec["resolved"]
    assert set(resolved) == {"device", "precision", "dropout_kernel", "optim", "allocator", "attention", "last_layer"}
    assert rec["runtime"] == {"device_type": resolved["device"], "precision": resolved["precision"],
                              "dropout_kernel": resolved["dropout_kernel"]}
    assert (rec["kernels"]["dropout"], rec["kernels"]["optimizer"], rec["kernels"]["last_layer"]) == \
        (resolved["dropout_kernel"], resolved["optim"], resolved["last_layer"])
    assert rec["precision"] == resolved["precision"]
