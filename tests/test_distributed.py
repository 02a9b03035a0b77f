"""Beyond one process: torchrun (gloo on CPU) writes once from rank 0 with every test review predicted once; a local
Ray runs a grid, skips completed runs, and records a task whose worker was killed as failed while the rest finish."""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, read_reviews, run_main, tiny_args, tree, write_csv


@pytest.fixture(scope="module")
def odd_data(tmp_path_factory):
    """41 test reviews: a count two processes cannot split evenly (the distributed sampler pads by repeating)."""
    d = tmp_path_factory.mktemp("odd")
    write_csv(d / "train.csv", read_reviews("train", 30))
    write_csv(d / "test.csv", read_reviews("test", 21))
    return d


def _torchrun(nproc, args, timeout=600):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(nproc), "-m", "part2_lora.train", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_torchrun_two_processes_write_once_and_predict_every_review_once(odd_data, tmp_path):
    common = ["--set", "data.test_samples=41"]
    configs = ["configs/part1_distilbert_lora.yaml"]
    one = tmp_path / "one" / "results"
    r = subprocess.run([sys.executable, "-m", "part2_lora.train", *tiny_args("part1", odd_data, one, *common,
                                                                            configs=configs)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    two = tmp_path / "two" / "results"
    r = _torchrun(2, tiny_args("part1", odd_data, two, *common, configs=configs))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("[done]") == 1 and r.stdout.count("[summary]") == 1  # rank 0 speaks and writes
    rows = list(csv.DictReader(open(two / "part1.csv")))
    recs = sorted((two / "runs").glob("*.json"))
    assert len(rows) == 1 and len(recs) == 1
    rec = json.loads(recs[0].read_text())
    assert rec["world_size"] == 2 and rows[0]["world_size"] == "2"
    assert len(rec["metrics"]["peak_mem_per_rank_mib"]) == 2 and min(rec["metrics"]["peak_mem_per_rank_mib"]) > 100
    # the adapter is kept once, by rank 0, with its inference cost (two ranks renaming into one folder collided)
    assert sorted(p.name for p in (two / "models").iterdir()) == [rec["run_id"]] and rec["saved"]["bytes"] > 0
    assert rec["inference"]["latency_ms"] > 0
    with np.load(two / "runs" / rec["predictions_file"]) as z:
        assert len(z["row"]) == 41 and len(set(z["row"].tolist())) == 41  # each review once, none repeated
    base = next(csv.DictReader(open(one / "part1.csv")))
    # What must not change with the number of processes: the run itself (identity), its counts and its steps.
    assert rows[0]["run_id"] == base["run_id"]
    for key in ("trainable_params", "total_params", "test_samples", "train_samples", "learning_rate"):
        assert rows[0][key] == base[key], key
    assert rec["metrics"]["train_steps"] == json.loads(
        (one / "runs" / f"{base['run_id']}.json").read_text())["metrics"]["train_steps"] == 4  # 32 / global 8


def test_a_batch_that_does_not_divide_over_the_processes_is_refused(odd_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    out = tmp_path / "results"
    rc, _, err = run_main("part1", tiny_args("part1", odd_data, out), capsys)
    assert rc == 2 and "train.batch_size: 8 does not divide over 3 processes" in err
    assert tree(out) == []


def _ray_grid(data, out, env_extra=None, extra=()):
    env = {**os.environ, "RAY_NUM_CPUS": "2", "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    env.pop("RAY_ADDRESS", None)
    args = tiny_args("part1", data, out, "--engine", "ray", "--set", "train.seeds=[0,1]", *extra)
    return subprocess.Popen([sys.executable, "-m", "part2_lora.train", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


def test_ray_runs_a_grid_and_skips_what_completed(odd_data, tmp_path):
    out = tmp_path / "results"
    proc = _ray_grid(odd_data, out)
    text = proc.communicate(timeout=900)[0]
    assert proc.returncode == 0, text[-3000:]
    rows = list(csv.DictReader(open(out / "part1.csv")))
    assert len(rows) == 4 and {(r["method"], r["seed"]) for r in rows} == {(m, s) for m in ("full", "lora")
                                                                           for s in ("0", "1")}
    assert "[ray] 4 run(s) submitted" in text and "[progress] 4/4 runs done (0 skipped, 0 failed)" in text
    assert text.count("[summary]") == 1  # written once, when the grid ends
    proc = _ray_grid(odd_data, out)
    text = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0 and text.count("[skip]") == 4 and "submitted" not in text  # nothing to submit
    assert len(list(csv.DictReader(open(out / "part1.csv")))) == 4


def test_ray_task_killed_mid_run_is_recorded_failed_and_the_rest_finish(odd_data, tmp_path):
    out = tmp_path / "results"
    proc = _ray_grid(odd_data, out, extra=("--set", "train.epochs=200"))  # long enough to be killed mid-run
    lines, victim, deadline = [], None, time.time() + 600
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"\(_task pid=(\d+)\).*\[run\] (part1-full-s0-\w+)", line)
        if m and victim is None:
            time.sleep(2)  # inside training (Ray forwards the task's output with a delay: kill soon after)
            victim = m.group(2)
            os.kill(int(m.group(1)), signal.SIGKILL)
        assert time.time() < deadline
    proc.wait(timeout=60)
    text = "".join(lines)
    assert victim and proc.returncode == 1, text[-3000:]
    rec = json.loads((out / "runs" / f"{victim}.json").read_text())
    assert rec["status"] == "failed" and "Ray task failed" in rec["error"]
    rows = list(csv.DictReader(open(out / "part1.csv")))  # intact, the other three runs in it
    assert len(rows) == 3 and victim not in {r["run_id"] for r in rows}
    assert "[progress] 4/4 runs done (0 skipped, 1 failed)" in text
    for p in (out / "runs").glob("*.json"):
        json.loads(p.read_text())  # every record parses
    assert not [p for p in out.rglob(".*") if not p.name.endswith(".lock")]  # no temporary leftovers


@pytest.mark.parametrize("rank, keeps", [("0", True), ("1", False)])
def test_only_rank_0_keeps_weights_and_times_inference(monkeypatch, rank, keeps):
    """Every rank ends with the same weights; a second rank renaming into results/models/<run_id> collided."""
    from types import SimpleNamespace

    from common import recipe

    calls = []
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(recipe, "build_tokenizer", lambda cfg: None)
    monkeypatch.setattr(recipe, "tokenize_splits", lambda *a: {"test": []})
    monkeypatch.setattr(recipe, "build_model", lambda *a, **k: "model")
    monkeypatch.setattr(recipe, "train_and_evaluate", lambda *a, **k: {"metrics": {}, "device": "cpu",
                                                                      "precision": "fp32"})
    monkeypatch.setattr(recipe, "save_trained", lambda *a: calls.append("save") or {})
    monkeypatch.setattr(recipe, "measure_inference", lambda *a: calls.append("inference") or {})
    cfg = SimpleNamespace(data=None, train=SimpleNamespace(padding="dynamic"), peft=SimpleNamespace(method="lora"),
                          output=SimpleNamespace(dir="results"))
    plan = SimpleNamespace(cfg=cfg, splits={}, model_config=None, evaluate_test=True, run_id="part1-lora-s0-x",
                           runtime=None)
    result = recipe.run(plan)
    assert calls == (["save", "inference"] if keeps else []) and ("saved" in result) == keeps


def test_ray_refuses_runs_planned_for_another_kind_of_machine():
    """The runtime is decided once, at planning, where the command starts: a CPU plan is not sent to GPU workers
    (it would train on their CPUs) nor a CUDA plan to a CPU-only cluster."""
    from types import SimpleNamespace

    from common.engines import check_runtime_fits
    from common.errors import UserError

    plan = lambda device: SimpleNamespace(run_id=f"part1-lora-s0-{device}", runtime=SimpleNamespace(device=device))  # noqa: E731
    check_runtime_fits([plan("cpu")], 0)
    check_runtime_fits([plan("cuda")], 4)
    with pytest.raises(UserError, match="part1-lora-s0-cpu was planned for the CPU .* cluster gives each run a GPU"):
        check_runtime_fits([plan("cpu")], 2)
    with pytest.raises(UserError, match="planned for cuda, but the cluster has no GPU"):
        check_runtime_fits([plan("cuda")], 0)
