"""Training pieces: the length-bucket sampler, device/precision/optimizer choice, metrics."""
import dataclasses

import numpy as np
import pytest

from common.devices import pick_optim, pick_precision
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
    assert pick_precision(cfg, "cpu") in ("bf16", "fp32")
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


def test_auto_picks_fused_adamw_on_cpu_too():
    cfg = RunCfg(part="part1")
    assert pick_optim(cfg, "cpu") == "adamw_torch_fused" and pick_optim(cfg, "cuda") == "adamw_torch_fused"
    plain = dataclasses.replace(cfg, train=TrainCfg(optim="adamw_torch"))
    assert pick_optim(plain, "cpu") == "adamw_torch"
