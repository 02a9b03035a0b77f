"""Saved weights: save -> load reproduces each method's model exactly; predict reproduces a run; merged LoRA equals
unmerged; clear refusals (unknown run, no saved weights, base checkpoint missing offline)."""
import csv
import json

import numpy as np
import pytest
import torch

from common import methods
from common.config import load_config

from conftest import PART3_METHODS, TINY, VOCAB, read_reviews, tiny_args, write_csv


def _tiny_cfg(method: str, out, tiny_data, *sets):
    return load_config(f"configs/part3_bert_{method}.yaml", str(TINY["part3"]),
                       (f"data.dir={tiny_data}", f"output.dir={out}", f"model.tokenizer={VOCAB}", *sets))


def _trained_like(cfg):
    """A tiny model of the method with its trainable weights moved far from their start, as training would."""
    from common.models import build_model

    model = build_model(cfg)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.5 * torch.randn(p.shape, generator=gen))
    return model.eval()


def _logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits.float()


@pytest.fixture(scope="module")
def batch():
    from transformers import BertTokenizerFast

    tok = BertTokenizerFast(vocab_file=str(VOCAB))
    texts = [r["sentences"] for r in read_reviews("test", 3)]
    return dict(tok(texts, truncation=True, max_length=64, padding=True, return_tensors="pt"))


@pytest.mark.parametrize("method", PART3_METHODS)
def test_save_then_load_gives_the_same_model(method, tmp_path, tiny_data, batch):
    from common.artifacts import load_trained, models_dir, save_trained
    from common.models import load_model_config

    cfg = _tiny_cfg(method, tmp_path / "results", tiny_data, "output.save_model=full")
    model = _trained_like(cfg)
    saved = save_trained(model, cfg, "run-x")
    folder = models_dir(cfg.output.dir, "run-x")
    assert saved["dir"] == "models/run-x" and saved["bytes"] > 0 and folder.is_dir()
    assert saved["kind"] == ("model" if method == "full" else "adapter")
    assert [p.name for p in folder.parent.iterdir()] == ["run-x"]  # no temporary folder left beside it
    loaded = load_trained(cfg, folder, load_model_config(cfg))
    expected, got = _logits(model, batch), _logits(loaded, batch)
    # Same weights, same maths; with the [CLS]-row readout (common/readout.py) the adapter model's logits came out
    # 6e-8 apart (one-row products of two model objects), so equal to float32 rounding, not bit for bit.
    assert torch.allclose(got, expected, rtol=0, atol=1e-6), (got - expected).abs().max()
    # And it is the trained model, not a fresh one: a differently seeded base differs.
    assert not torch.allclose(_logits(_trained_like(_tiny_cfg(method, tmp_path / "r2", tiny_data,
                                                              "train.seed=5")), batch), expected)


def test_a_forced_rerun_replaces_the_saved_folder_whole(tmp_path, tiny_data):
    from common.artifacts import models_dir, save_trained

    cfg = _tiny_cfg("lora", tmp_path / "results", tiny_data)
    save_trained(_trained_like(cfg), cfg, "run-x")
    (models_dir(cfg.output.dir, "run-x") / "stale.txt").write_text("from the earlier run")
    save_trained(_trained_like(cfg), cfg, "run-x")
    assert sorted(p.name for p in models_dir(cfg.output.dir, "run-x").iterdir()) == \
        ["README.md", "adapter_config.json", "adapter_model.safetensors", "imdb_peft.json"]
    assert [p.name for p in models_dir(cfg.output.dir, "run-x").parent.iterdir()] == ["run-x"]


@pytest.mark.parametrize("pooler", [False, True])
@pytest.mark.parametrize("method", [m for m in PART3_METHODS if methods.get(m).mergeable])
def test_merged_model_gives_the_unmerged_logits(method, pooler, tmp_path, tiny_data, batch):
    from common.inference import merged_copy

    # The pooler trained too (the proxy profiles' setting): peft's own IA3 unload failed on it.
    model = _trained_like(_tiny_cfg(method, tmp_path / "results", tiny_data, f"peft.train_pooler={pooler}"))
    unmerged = _logits(model, batch)
    merged_model = merged_copy(model)
    merged = _logits(merged_model, batch)
    leftover = [n for n, m in merged_model.named_modules() if "modules_to_save" in n or
                type(m).__module__.startswith("peft.")]
    assert not leftover, leftover  # a plain transformers model: nothing of peft left in it
    # fp32: merging reorders one addition per weight (W x + B A x vs (W + B A) x); 1e-4 on logits of order 1.
    assert torch.allclose(merged, unmerged, atol=1e-4) and unmerged.abs().max() > 0.05


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, tiny_data):
    out = tmp_path_factory.mktemp("predict") / "results"
    import subprocess
    import sys

    from conftest import ROOT
    args = tiny_args("part3", tiny_data, out, configs=["configs/part3_bert_full.yaml", "configs/part3_bert_lora.yaml",
                                                       "configs/part3_bert_adapter.yaml"])
    r = subprocess.run([sys.executable, "-m", "part4_peft_methods.train", *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    runs = {json.loads(p.read_text())["method"]: json.loads(p.read_text()) for p in (out / "runs").glob("*.json")}
    return out, runs


def test_records_name_the_saved_folder_and_the_inference_cost(tiny_runs):
    out, runs = tiny_runs
    assert runs["full"]["saved"] == {"kind": "none", "dir": None, "bytes": None}  # auto: full FT keeps nothing
    for method in ("lora", "adapter"):
        saved, inf = runs[method]["saved"], runs[method]["inference"]
        assert saved["kind"] == "adapter" and (out / saved["dir"]).is_dir() and saved["bytes"] > 1000
        assert inf["latency_ms"] > 0 and inf["test_reviews_per_s"] > 0 and inf["latency_reviews"] == 16
    assert runs["lora"]["inference"]["latency_merged_ms"] > 0
    assert runs["lora"]["inference"]["merge_max_abs_logit_diff"] < 1e-2  # bf16 autocast on both sides
    assert runs["adapter"]["inference"]["latency_merged_ms"] is None
    rows = {r["method"]: r for r in csv.DictReader(open(out / "part3.csv"))}
    assert int(rows["lora"]["saved_bytes"]) == runs["lora"]["saved"]["bytes"] and rows["full"]["saved_bytes"] == ""
    assert float(rows["lora"]["latency_ms"]) == runs["lora"]["inference"]["latency_ms"]
    summary = (out / "summary.md").read_text()
    assert "| Saved |" in summary.split("## Findings")[1].split("\n## ")[0]  # saved size in the Findings
    assert "Latency, batch 1" in summary.split("## Part 3")[1]  # latency in the part's table


@pytest.mark.parametrize("method", ["lora", "adapter"])
def test_predict_reproduces_a_runs_test_predictions(tiny_runs, tiny_data, method, tmp_path, capsys):
    from common import predict

    out, runs = tiny_runs
    rec = runs[method]
    with np.load(out / "runs" / rec["predictions_file"]) as z:
        rows, pred, prob = z["row"], z["pred"], z["prob_pos"].astype(float)
    texts = [r["sentences"] for r in csv.DictReader(open(tiny_data / "test.csv"))]
    p = predict.Predictor(str(out), rec["run_id"])
    labels, probs = p.predict([texts[i] for i in rows])
    assert np.array_equal(labels, pred)
    assert np.abs(probs - prob).max() < 2e-3  # float16 in the predictions file, bf16 autocast, other batches
    # The CLI, on a CSV and on texts.
    inp = write_csv(tmp_path / "in.csv", [{"sentences": texts[i], "labels": 0} for i in rows[:5]])
    rc = predict.main(["--run", rec["run_id"], "--output-dir", str(out), "--input", str(inp), "--output",
                       str(tmp_path / "pred.csv")])
    assert rc == 0
    got = list(csv.DictReader(open(tmp_path / "pred.csv")))
    assert [int(g["label"]) for g in got] == list(pred[:5]) and got[0]["text"] == texts[rows[0]]
    assert [g["label_name"] for g in got] == [("positive" if y else "negative") for y in pred[:5]]
    assert np.abs(np.array([float(g["prob_positive"]) for g in got]) - prob[:5]).max() < 2e-3
    # Printed: one line per text, label and P(positive) as the run scored those reviews.
    capsys.readouterr()
    assert predict.main(["--run", rec["run_id"], "--output-dir", str(out), texts[rows[0]], texts[rows[1]]]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()]
    assert [name for name, _, _ in lines] == [("positive" if y else "negative") for y in pred[:2]]
    assert np.abs(np.array([float(p) for _, p, _ in lines]) - prob[:2]).max() < 2e-3


def test_predict_refuses_what_it_cannot_do(tiny_runs, tmp_path, capsys):
    from common import predict

    out, runs = tiny_runs
    cases = [(["--run", "part3-lora-s0-nosuchrun", "x"], "no run record"),
             (["--run", runs["full"]["run_id"], "x"], "no saved weights"),
             (["--run", runs["lora"]["run_id"]], "either TEXT arguments or --input"),
             (["--run", runs["lora"]["run_id"], "--input", str(tmp_path / "nope.csv")], "--input"),
             ]
    # A run that did not complete, and a record cut short (a disk that filled up, a copy interrupted).
    failed = dict(runs["lora"], run_id="part3-lora-s0-failed", status="failed")
    (out / "runs" / "part3-lora-s0-failed.json").write_text(json.dumps(failed))
    (out / "runs" / "part3-lora-s0-cut.json").write_text(json.dumps(runs["lora"])[:200])
    inp = write_csv(tmp_path / "in.csv", [{"review": "a fine film"}], columns=("review",))
    # A listing whose listed record is gone (the sweep or study folder it points into removed).
    (out / "runs" / "part3-lora-s0-gone.json").write_text(json.dumps({"run_id": "part3-lora-s0-gone",
                                                                       "listed_from": "sweep/runs/nowhere.json"}))
    cases += [(["--run", "part3-lora-s0-failed", "x"], "the run is failed, not completed"),
              (["--run", "part3-lora-s0-gone", "x"], "lists " + str(out / "sweep" / "runs" / "nowhere.json")),
              (["--run", "part3-lora-s0-cut", "x"], "part3-lora-s0-cut.json: not a readable run record"),
              (["--run", runs["lora"]["run_id"], "--input", str(inp)], "no column 'sentences' (--column)"),
              (["--run", runs["lora"]["run_id"], "--input", str(inp), "--column", "text"], "no column 'text'")]
    for args, expect in cases:
        capsys.readouterr()
        assert predict.main(args + ["--output-dir", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error") and expect in err and "Traceback" not in err
    # The base checkpoint missing offline: a run whose base was a hub model nobody cached here.
    rec = dict(runs["lora"], run_id="part3-lora-s0-offline")
    rec["config"] = json.loads(json.dumps(rec["config"]))
    rec["config"]["model"].update(init="pretrained", name_or_path="some-org/bert-never-cached")
    (out / "runs" / "part3-lora-s0-offline.json").write_text(json.dumps(rec))
    assert predict.main(["--run", "part3-lora-s0-offline", "--output-dir", str(out), "x"]) == 2
    err = capsys.readouterr().err
    assert "some-org/bert-never-cached" in err and "hub cannot be reached" in err


def test_an_adapter_head_that_does_not_match_its_model_is_refused(tiny_runs, tmp_path, capsys):
    """AdapterHub runs keep their classifier and pooler in head.safetensors: one from another model is named."""
    import shutil

    from safetensors.torch import save_file

    from common import predict

    out, runs = tiny_runs
    rec = runs["adapter"]
    copy = tmp_path / "results"
    shutil.copytree(out, copy)
    save_file({"classifier.not_here": torch.zeros(2)}, str(copy / rec["saved"]["dir"] / "head.safetensors"))
    capsys.readouterr()
    assert predict.main(["--run", rec["run_id"], "--output-dir", str(copy), "a fine film"]) == 2
    err = capsys.readouterr().err
    assert "head.safetensors holds parameters the model lacks: ['classifier.not_here']" in err
    assert "Traceback" not in err
