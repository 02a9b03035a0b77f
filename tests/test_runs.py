"""Faults: two writers in one folder, SIGKILL and SIGTERM mid-training, crashed runs, run identity."""
import csv
import json
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from common import records

from conftest import RECIPES, ROOT, run_main, table, tiny_args, write_run


def _record_many(out, who, n):
    from common.table import load_table, write_part_csvs

    for i in range(n):
        write_run(out, {"run_id": f"part1-full-s{i}-{who}", "part": "part1", "method": "full", "seed": i,
                        "accuracy": 0.5})
        write_part_csvs(out, load_table(out))  # as each command's report does, racing the other writer


def test_two_commands_recording_into_one_folder_both_land_intact(tmp_path):
    """Each run is its own record file, so two writers never touch one file but the generated CSV, which is
    whole whichever writes last and lists every run once the report runs again."""
    from common.table import load_table, write_part_csvs

    out = tmp_path / "results"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_record_many, args=(out, who, 25)) for who in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    path = out / "part1.csv"
    assert open(path).read().count("run_id,") == 1  # one header, a whole file
    assert len(load_table(out)) == 50
    write_part_csvs(out, load_table(out))
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == 50 and len({r["run_id"] for r in rows}) == 50
    leftovers = [p for d in (out, out / "runs") for p in d.iterdir() if p.name.startswith(".")]
    assert not leftovers  # no temporary files left behind


def test_json_records_are_written_atomically(tmp_path):
    path = tmp_path / "runs" / "x.json"
    records.write_json(path, {"a": float("nan"), "b": 1})
    assert json.loads(path.read_text()) == {"a": None, "b": 1}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_identity_follows_config_data_and_versions():
    cfg = {"train": {"learning_rate": 1e-3, "allow_cpu": True}, "output": {"dir": "a"}}
    base = records.run_identity(cfg, {"train": "x"}, {"torch": "1"})
    moved = {**cfg, "output": {"dir": "b"}}
    assert records.run_identity(moved, {"train": "x"}, {"torch": "1"}) == base  # where results go is not identity
    assert records.run_identity({**cfg, "train": {"learning_rate": 2e-3}}, {"train": "x"}, {"torch": "1"}) != base
    assert records.run_identity(cfg, {"train": "y"}, {"torch": "1"}) != base
    assert records.run_identity(cfg, {"train": "x"}, {"torch": "2"}) != base


def test_identity_follows_the_resolved_runtime_and_the_active_method_only():
    from common.schema import RunCfg

    cfg = RunCfg(part="part2").to_dict()
    ident = lambda c, rt=None: records.run_identity(c, {"train": "x"}, {"torch": "1"}, rt)  # noqa: E731
    cpu_fp32 = {"device_type": "cpu", "precision": "fp32", "dropout_kernel": "fast"}
    assert ident(cfg, cpu_fp32) != ident(cfg, {**cpu_fp32, "precision": "bf16"})  # auto resolved differently
    # A value named by hand and an auto that resolved to it are one computation, one identity.
    named = {**cfg, "train": {**cfg["train"], "dropout_kernel": "fast", "precision": "fp32"}}
    assert ident(named, cpu_fp32) == ident(cfg, cpu_fp32) != ident(named, {**cpu_fp32, "dropout_kernel": "torch"})
    # The settings of methods a run does not use are not part of it; those of its own method are.
    full_other_lora = {**cfg, "peft": {**cfg["peft"], "lora": {**cfg["peft"]["lora"], "r": 64}}}
    assert ident(full_other_lora) == ident(cfg)
    lora = {**cfg, "peft": {**cfg["peft"], "method": "lora"}}
    lora_r64 = {**lora, "peft": {**lora["peft"], "lora": {**lora["peft"]["lora"], "r": 64}}}
    assert ident(lora_r64) != ident(lora)
    # A key added later is left out at its default (old runs stay recognised) and counts when set.
    pooled = {**cfg, "peft": {**cfg["peft"], "train_pooler": True}}
    legacy = {**cfg, "peft": {k: v for k, v in cfg["peft"].items() if k != "train_pooler"}}
    assert ident(legacy) == ident(cfg) != ident(pooled)
    # How often validation runs and the loss is logged does not change training.
    quiet = {**cfg, "train": {**cfg["train"], "evals_per_epoch": 4, "logging_steps": 1}}
    assert ident(quiet) == ident(cfg)
    # Where the data folder is does not matter: its files' hashes stand for it.
    assert ident({**cfg, "data": {**cfg["data"], "dir": "/elsewhere"}}) == ident(cfg)


def _start_long_run(tiny_data, out):
    args = tiny_args("part1", tiny_data, out, "--set", "train.epochs=400",
                     configs=["configs/part1_distilbert_full.yaml"])
    proc = subprocess.Popen([sys.executable, "-m", RECIPES["part1"], *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + 120
    seen = ""
    while time.time() < deadline:  # wait until training has started
        line = proc.stdout.readline()
        seen += line
        if line.startswith("[run]"):
            time.sleep(4)
            return proc, seen
        if proc.poll() is not None:
            break
    proc.kill()
    pytest.fail("the run did not start: " + seen[-2000:])


def _completed_lora(tiny_data, out, capsys):
    rc, _, err = run_main("part1", tiny_args("part1", tiny_data, out, configs=["configs/part1_distilbert_lora.yaml"]),
                          capsys)
    assert rc == 0, err
    return (out / "part1.csv").read_text()


def test_sigkill_mid_training_leaves_results_intact(tiny_data, tmp_path, capsys):
    out = tmp_path / "results"
    before = _completed_lora(tiny_data, out, capsys)
    proc, _ = _start_long_run(tiny_data, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert (out / "part1.csv").read_text() == before  # no partial row
    for p in (out / "runs").glob("*.json"):
        json.loads(p.read_text())  # no corrupt record
    rc, _, err = run_main("part1", tiny_args("part1", tiny_data, out, configs=["configs/part1_distilbert_full.yaml"]),
                          capsys)
    assert rc == 0, err
    rows = list(csv.DictReader(open(out / "part1.csv")))
    assert [r["method"] for r in rows] == ["lora", "full"] and all(r["status"] == "completed" for r in rows)


def test_sigterm_records_interrupted_and_writes_no_row(tiny_data, tmp_path, capsys):
    out = tmp_path / "results"
    before = _completed_lora(tiny_data, out, capsys)
    proc, _ = _start_long_run(tiny_data, out)
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, rest[-2000:]
    assert (out / "part1.csv").read_text() == before
    statuses = {json.loads(p.read_text())["method"]: json.loads(p.read_text())["status"]
                for p in (out / "runs").glob("*.json")}
    assert statuses == {"lora": "completed", "full": "interrupted"}


def test_a_crashed_run_is_recorded_failed_and_the_rest_go_ahead(tiny_data, tmp_path, capsys, monkeypatch):
    from common import recipe

    real = recipe.run

    def crash_full(plan):
        if plan.cfg.peft.method == "full":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(plan)

    monkeypatch.setattr(recipe, "run", crash_full)
    out = tmp_path / "results"
    rc, stdout, err = run_main("part1", tiny_args("part1", tiny_data, out), capsys)
    assert rc == 1
    assert "[failed]" in err and "out of memory" in err
    recs = {json.loads(p.read_text())["method"]: json.loads(p.read_text()) for p in (out / "runs").glob("*.json")}
    assert recs["full"]["status"] == "failed" and "CUDA out of memory" in recs["full"]["error"]
    assert recs["lora"]["status"] == "completed"
    rows = list(csv.DictReader(open(out / "part1.csv")))
    assert [r["method"] for r in rows] == ["lora"]
    # A failed run is not "completed": the next invocation retries it instead of skipping it.
    monkeypatch.setattr(recipe, "run", real)
    rc, stdout, _ = run_main("part1", tiny_args("part1", tiny_data, out), capsys)
    assert rc == 0 and stdout.count("[skip]") == 1


def test_a_run_is_computed_once_across_parts(tmp_path, tiny_data, capsys, monkeypatch):
    """Part 2's full FT and prefix runs are Part 3's computation (same model, data, settings): `make part2` after
    `make part3` lists Part 3's runs for Part 2 too (one record each, no copy), trains nothing, and the CSV and
    summary say which part made them."""
    from common import recipe

    out = tmp_path / "results"
    part3 = ["configs/part3_bert_full.yaml", "configs/part3_bert_prefix.yaml"]
    rc, _, err = run_main("part3", tiny_args("part3", tiny_data, out, configs=part3), capsys)
    assert rc == 0, err
    monkeypatch.setattr(recipe, "run", lambda plan: pytest.fail(f"{plan.run_id} trained again"))
    rc, stdout, err = run_main("part2", tiny_args("part2", tiny_data, out), capsys)
    assert rc == 0, err
    assert stdout.count("[reuse] part2-") == 2
    rows3 = {r["method"]: r for r in records.read_csv_rows(out / "part3.csv")}
    rows2 = {r["method"]: r for r in records.read_csv_rows(out / "part2.csv")}
    assert not list((out / "runs").glob("part2-*.json"))  # nothing copied
    for method in ("full", "prefix"):
        assert rows2[method]["run_id"] == rows3[method]["run_id"] and rows2[method]["made_for"] == "part3"
        assert rows2[method]["accuracy"] == rows3[method]["accuracy"]
        rec = json.loads(records.record_path(str(out), rows3[method]["run_id"]).read_text())
        assert rec["part"] == "part3" and rec["parts"] == ["part3", "part2"]
    # Again: found listed, skipped.
    rc, stdout, err = run_main("part2", tiny_args("part2", tiny_data, out), capsys)
    assert rc == 0 and stdout.count("[skip] part2-") == 2 and "[reuse]" not in stdout
    summary = (out / "summary.md").read_text()
    part2 = summary.split("## Part 2")[1].split("## Part 3")[0]
    # Part 2's runs are Part 3's: said once, in the Findings, which compare them on the shared predictions.
    named = re.search(r"headline runs are the Findings' (.+?) and (.+?) rows", " ".join(part2.split()))
    assert named and set(named.groups()) == {"Full FT", "Prefix tuning"}  # in accuracy order, which may go either way
    findings = table(summary.split("## Findings")[1], "Method")
    assert findings["Prefix tuning"]["Δ vs full FT, points [95% CI]"] != "–"  # compared (or said collapsed)
    # --force trains again (no reuse): the user asked for a new computation.
    monkeypatch.setattr(recipe, "run", lambda plan: (_ for _ in ()).throw(RuntimeError("forced")))
    rc, stdout, _ = run_main("part2", tiny_args("part2", tiny_data, out, "--force"), capsys)
    assert rc == 1 and "[reuse]" not in stdout


def test_committed_records_name_no_machines_paths():
    """Run records, sweep records and picks name files as they read from the project folder (`../shared/...`,
    `results`, `python -m ...`), so they travel (a one-time migration made the older ones so)."""
    import re

    from conftest import ROOT

    files = [*(ROOT / "study" / "runs").glob("*.json"), *(ROOT / "study" / "sweep" / "runs").glob("*.json"),
             ROOT / "study" / "sweep" / "picks.json"]
    absolute = re.compile(r'(?:"|=| )/(?:work|tmp|home|root|Users)/')
    assert len(files) > 200
    offenders = [f.name for f in files if absolute.search(f.read_text())]
    assert not offenders, offenders[:5]


def test_the_command_a_record_keeps_is_the_one_a_user_types():
    from common.env import command_line

    from conftest import ROOT

    argv = [str(ROOT / "common" / "sweep.py"), "--part", "part3", "--set", f"data.dir={ROOT.parent / 'shared'}",
            "--config", str(ROOT / "configs" / "part3_bert_lora.yaml")]
    assert command_line(argv) == ("python -m common.sweep --part part3 --set data.dir=../shared --config "
                                  "configs/part3_bert_lora.yaml")
    assert command_line([str(ROOT / "part2_lora" / "train.py"), "--dry-run"]) == "python -m part2_lora.train --dry-run"


def test_a_users_runs_stay_apart_from_the_study_and_reuse_its_runs(tmp_path, tiny_data, capsys, monkeypatch):
    """The committed study is written only where it is named; a user's own folder finds its runs done (recorded
    there, not trained again), and its summary opens with what the last command made, each run checked against
    the committed run of the same computation."""
    from common import recipe

    study, mine = tmp_path / "study", tmp_path / "results"
    monkeypatch.setattr(records, "STUDY_DIR", study)
    rc, _, err = run_main("part1", tiny_args("part1", tiny_data, study), capsys)
    assert rc == 0, err
    committed = sorted(p.name for p in (study / "runs").iterdir())
    monkeypatch.setattr(recipe, "run", lambda plan: pytest.fail(f"{plan.run_id} trained again"))
    rc, stdout, err = run_main("part1", tiny_args("part1", tiny_data, mine), capsys)
    assert rc == 0, err
    assert stdout.count("[reuse] part1-") == 2 and "the committed study's run" in stdout
    assert sorted(p.name for p in (study / "runs").iterdir()) == committed  # the study is not written
    rows = records.read_csv_rows(mine / "part1.csv")
    for row in rows:
        rec = json.loads(records.record_path(str(mine), row["run_id"]).read_text())
        # A listing of the committed record: nothing of it copied, its predictions read from the study.
        assert (mine / rec["listed_from"]).resolve() == records.record_path(str(study), row["run_id"]).resolve()
        assert "metrics" not in rec and not (mine / "runs" / f"{row['run_id']}.preds.npz").exists()
    last = json.loads(records.last_command_path(str(mine)).read_text())
    assert last["part"] == "part1" and [r["outcome"] for r in last["runs"]] == ["reused", "reused"]
    summary = (mine / "summary.md").read_text()
    lines = summary.splitlines()
    assert lines[2] == "## Your last command" and lines.index("## Your last command") < lines.index("## Findings")
    mine_table = table(summary.split("## Your last command")[1].split("\n## ")[0], "Method")
    assert set(mine_table) == {"Full FT", "LoRA"}
    # Found done, not trained: the committed runs themselves, which reproduce nothing.
    for row in mine_table.values():
        assert row["Against the committed study"] == "– (the committed run, listed: not trained here)", row
    # Trained again here (--force): the same computation on the same machine, the same predictions, a difference of
    # exactly zero.
    monkeypatch.undo()
    monkeypatch.setattr(records, "STUDY_DIR", study)
    rc, stdout, err = run_main("part1", tiny_args("part1", tiny_data, mine, "--force"), capsys)
    assert rc == 0 and "[reuse]" not in stdout, err
    summary = (mine / "summary.md").read_text()
    for row in table(summary.split("## Your last command")[1].split("\n## ")[0], "Method").values():
        assert row["Against the committed study"] == "reproduced (1 seed, +0.00 [+0.00, +0.00])", row


def test_a_run_that_scores_otherwise_than_the_committed_one_is_said_to_differ():
    """On the same 1,000 reviews, a run right on 70% of them against the committed run's 90%: 'differs by -20.00
    points' with its interval; the committed run found done in the study is no reproduction of itself."""
    from common.analysis import SAME_SCIENCE
    from common.report.latest import reproduction_cell

    rng = np.random.default_rng(0)

    def group(share, folder):
        correct = rng.random(1000) < share
        return {**dict.fromkeys(SAME_SCIENCE), "rows": [{"run_id": f"part1-lora-s0-{folder}", "seed": 0,
                "accuracy": float(correct.mean()), "correct": correct, "review_rows": np.arange(1000),
                "_dir": str(records.STUDY_DIR if folder == "study" else folder)}]}

    twin = group(0.9, "study")
    committed = {(None,) * len(SAME_SCIENCE): twin}
    cell = reproduction_cell(group(0.7, "results"), committed)
    assert re.fullmatch(r"differs by -\d+\.\d\d points \[-\d+\.\d\d, -\d+\.\d\d\] \(1 seed\)", cell), cell
    assert reproduction_cell(twin, committed) == "– (the committed run, listed: not trained here)"


def test_the_study_folder_is_committed_and_a_users_folder_is_not():
    """`results/` (every command's default output) is ignored by git; `study/` is not."""
    from conftest import ROOT

    def ignored(path):
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0

    assert ignored("results/runs/part1-full-s0-x.json") and ignored("results/summary.md")
    assert not ignored("study/runs/part1-full-s0-x.json") and not ignored("study/summary.md")
    assert ignored("study/models/part1-lora-s0-x/adapter_model.safetensors")
