"""Learning-rate sweep: scored on validation only, best pick per method reused by the part's reported runs."""
import csv
import json

import numpy as np
import pytest

from common import records

from conftest import LEARN, TINY, VOCAB


def _val_correct(out, run_id):
    with np.load(out / "sweep" / "runs" / f"{run_id}.val.preds.npz") as z:
        return (z["pred"] == z["label"]).astype(float), z["pred"]


# The rate whose runs collapse by construction (collapse_at_dead_rate): no training outcome decides it.
DEAD_RATE = 1.0


@pytest.fixture
def collapse_at_dead_rate(monkeypatch):
    """Runs at DEAD_RATE return logits that ignore the review (times 0, plus a constant favouring class 0): every
    prediction is class 0, on any CPU and at any precision. The loss is the model's own, so the run trains,
    validates and is scored as any other; how a rate that collapses is handled is what is tested, not whether a
    large rate happens to collapse on this machine's numerics."""
    from common import recipe

    build = recipe.build_model

    def one_class(module, inputs, out):
        out["logits"] = out["logits"] * 0 + out["logits"].new_tensor([4.0, -4.0])
        return out

    def build_model(cfg, *a, **kw):
        model = build(cfg, *a, **kw)
        if cfg.train.learning_rate == DEAD_RATE:
            model.register_forward_hook(one_class)
        return model

    monkeypatch.setattr(recipe, "build_model", build_model)


def test_sweep_picks_on_validation_and_the_part_uses_the_picks(signal_data, tmp_path, capsys, collapse_at_dead_rate):
    """On reviews the tiny models learn: a rate too low to learn much in 30 steps, one that learns, and one whose
    runs predict one class (by construction). The pick, its runner-up interval and the edge rule are recomputed."""
    from common import sweep

    out = tmp_path / "results"
    grids = {"full": [3e-3, 1e-2, DEAD_RATE], "lora": [1e-2, 3e-2, DEAD_RATE]}
    profile = tmp_path / "grids.yaml"
    profile.write_text(f"extends: {LEARN['part1']}\nmethods:\n" + "".join(
        f"  {m}: {{train: {{lr_grid: {g}}}}}\n" for m, g in grids.items()))
    sets = [f"data.dir={signal_data}", f"output.dir={out}", f"model.tokenizer={VOCAB}",
            f"data.cache_dir={tmp_path / 'tok'}", "train.lr_grid_edge_steps=1"]
    args = ["--part", "part1", "--profile", str(profile), *[x for s in sets for x in ("--set", s)]]
    rc = sweep.main(args)
    assert rc == 0, capsys.readouterr().err
    picks = json.loads((out / "sweep" / "picks.json").read_text())
    assert set(picks) == {f"part1/full/{profile}", f"part1/lora/{profile}"}
    assert any(p["runner_up"] for p in picks.values())  # at least one pick has a rate to be compared with
    for key, p in picks.items():
        grid = grids[key.split("/")[1]]
        by_lr = {sc["learning_rate"]: sc for sc in p["scores"]}
        # The dead rate predicts one class on every review, so it is never picked.
        assert by_lr[DEAD_RATE]["collapsed"] and by_lr[DEAD_RATE]["val_accuracy"] == 0.5
        assert p["learning_rate"] != DEAD_RATE
        for sc in p["scores"]:  # each score is what its run's validation predictions say
            correct, pred = _val_correct(out, sc["run_id"])
            assert sc["val_accuracy"] == pytest.approx(correct.mean())
            assert sc["collapsed"] == (np.bincount(pred, minlength=2).max() / len(pred) >= 0.99)
        alive = [sc for sc in p["scores"] if not sc["collapsed"]]
        best = max(alive, key=lambda sc: (sc["val_accuracy"], -sc["val_loss"], -sc["learning_rate"]))
        assert p["learning_rate"] == best["learning_rate"] and best["val_accuracy"] >= 0.9
        # One rate past an edge when the grid's own best sat on it, none otherwise.
        first = max((sc for sc in alive if sc["learning_rate"] in grid),
                    key=lambda sc: (sc["val_accuracy"], -sc["val_loss"], -sc["learning_rate"]))
        step = sweep.edge_step(grid, first["learning_rate"])
        assert p["grid"] == sorted(grid + ([step] if step else [])) and ("extended" in p) == bool(step)
        # The runner-up: the next best eligible rate, its paired difference on the same validation reviews.
        gap = p["runner_up"]
        second = max((sc for sc in alive if sc is not best),
                     key=lambda sc: (sc["val_accuracy"], -sc["val_loss"], -sc["learning_rate"]), default=None)
        assert (gap is None) == (second is None)
        if gap:
            a, _ = _val_correct(out, best["run_id"])
            b, _ = _val_correct(out, second["run_id"])
            d = a - b
            half = 1.959964 * d.std(ddof=1) / np.sqrt(len(d))
            assert gap["learning_rate"] == second["learning_rate"] and gap["diff"] == pytest.approx(d.mean())
            assert gap["ci"] == pytest.approx([d.mean() - half, d.mean() + half], abs=1e-6)
            assert gap["resolved"] == (gap["ci"][0] > 0 or gap["ci"][1] < 0)
    rows = list(csv.DictReader(open(out / "part1.csv")))
    assert len(rows) == 2
    for row in rows:
        pick = picks[f"part1/{row['method']}/{profile}"]
        assert float(row["learning_rate"]) == pick["learning_rate"] and row["lr_source"].startswith("sweep")
        # Seed 0's final run is the sweep's run at the pick: listed, not trained again and not copied (its metrics
        # and predictions are read from the sweep's record), with the final run's own config.
        rec = json.loads((out / "runs" / f"{row['run_id']}.json").read_text())
        swept = json.loads((out / rec["listed_from"]).read_text())
        assert rec["run_id"] == swept["run_id"] and "metrics" not in rec
        assert records.read_record(str(out), row["run_id"])["metrics"] == swept["metrics"]
        assert rec["config"]["train"]["learning_rate"] == pick["learning_rate"]
        assert (out / "sweep" / "runs" / swept["predictions_file"]).is_file()
        assert not (out / "runs" / swept["predictions_file"]).exists()
    assert "[reuse]" in capsys.readouterr().out
    assert "Learning-rate selection" in (out / "summary.md").read_text()
    # Again: every run is skipped and the picks file is left as it was (no new date for the same decision).
    before = (out / "sweep" / "picks.json").read_bytes()
    assert sweep.main(args) == 0
    assert (out / "sweep" / "picks.json").read_bytes() == before


def test_the_step_past_an_edge():
    from common.sweep import edge_step

    assert edge_step([1e-4, 3e-4, 1e-3], 1e-3) == 3.3e-3 and edge_step([1e-4, 3e-4, 1e-3], 1e-4) == 3.3e-5
    assert edge_step([1e-4, 3e-4, 1e-3], 3e-4) is None and edge_step([1e-3], 1e-3) is None


def test_a_pick_for_another_setup_is_not_used(tiny_data, tmp_path, capsys):
    from common import picks
    from common.config import load_config

    out = tmp_path / "results"
    cfg = load_config("configs/part1_distilbert_lora.yaml", str(TINY["part1"]), (f"output.dir={out}",))
    from common.records import write_json
    write_json(picks.picks_path(str(out)), {picks.pick_name(cfg): {"learning_rate": 0.5, "grid": [0.5],
                                                                    "selection_key": "other", "scores": []}})
    new, source = picks.apply_pick(cfg, {"train": "x", "test": "y"}, {"device_type": "cpu"}, "the part YAML")
    assert new.train.learning_rate == cfg.train.learning_rate and source == "the part YAML"


def test_the_learning_rate_names_its_real_source_and_set_wins_over_a_pick(tmp_path, capsys):
    from common import picks
    from common.config import load_config
    from common.records import write_json

    out = tmp_path / "results"
    sources: dict = {}
    cfg = load_config("configs/part1_distilbert_lora.yaml", "quick", (f"output.dir={out}",), sources=sources)
    assert sources["train.learning_rate"] == "configs/profiles/quick.yaml (methods.lora)"
    assert "[config] train.learning_rate: 0.0005 from configs/part1_distilbert_lora.yaml is replaced by 0.003 from " \
           "configs/profiles/quick.yaml (methods.lora)" in capsys.readouterr().err
    fingerprints, runtime = {"train": "x", "test": "y"}, {"device_type": "cpu"}
    write_json(picks.picks_path(str(out)), {picks.pick_name(cfg): {
        "learning_rate": 0.5, "grid": [0.5], "scores": [],
        "selection_key": picks.selection_key(cfg, fingerprints, runtime)}})
    new, source = picks.apply_pick(cfg, fingerprints, runtime, sources["train.learning_rate"])
    assert new.train.learning_rate == 0.5 and source.startswith("sweep")
    sources = {}
    cfg = load_config("configs/part1_distilbert_lora.yaml", "quick", (f"output.dir={out}", "train.learning_rate=7e-4"),
                      sources=sources)
    new, source = picks.apply_pick(cfg, fingerprints, runtime, sources["train.learning_rate"])
    assert new.train.learning_rate == 7e-4 and source == "--set train.learning_rate"


def test_an_interrupted_sweep_stops_without_picks_or_final_runs(tiny_data, tmp_path, monkeypatch, capsys):
    from common import cli, picks, sweep

    monkeypatch.setattr(cli, "run_plans", lambda plans, *a, **k: [("interrupted", None)] + [("not run", None)] *
                        (len(plans) - 1))
    finals = []
    monkeypatch.setattr(cli, "main", lambda part, argv=None, prog=None: finals.append(argv) or 0)
    out = tmp_path / "results"
    sets = [f"data.dir={tiny_data}", f"output.dir={out}", f"model.tokenizer={VOCAB}", "train.lr_grid=[1.0e-4, 1.0e-3]"]
    rc = sweep.main(["--part", "part1", "--profile", str(TINY["part1"]), *[x for s in sets for x in ("--set", s)]])
    assert rc == 130 and finals == [] and not picks.picks_path(str(out)).exists()


def test_a_pick_never_depends_on_the_grids_order():
    from common.sweep import pick_best

    scores = [{"learning_rate": lr, "val_accuracy": 0.84, "val_loss": loss, "collapsed": False}
              for lr, loss in ((1e-4, 0.40), (2e-4, 0.38), (5e-5, 0.38))]
    picks = {pick_best(order)[0]["learning_rate"] for order in (scores, scores[::-1], scores[1:] + scores[:1])}
    assert picks == {5e-5}  # tied accuracy and loss: the smaller rate, in every order of the grid


def test_a_fresh_clone_plans_the_study_with_the_committed_picks():
    """The committed picks are reused on any machine that runs the same science: same model, data, method,
    budget and precision (bf16 here, as the study ran), whatever the CPU or the speed kernels."""
    import argparse

    from common.config import part_configs
    from common.plan import plan_runs

    from conftest import IMDB, ROOT

    picks = json.loads((ROOT / "study/sweep/picks.json").read_text())
    args = argparse.Namespace(config=part_configs("part3"), profile="study", dry_run=True,
                              set=[f"data.dir={IMDB}", "train.precision=bf16", "train.seeds=[0]"])
    # Every method with a committed study pick (the eight first studied, then each method as its study lands).
    plans = [p for p in plan_runs("part3", args) if f"part3/{p.cfg.peft.method}/study" in picks]
    assert {"full", "lora", "dora", "ia3", "prompt", "ptuning", "prefix", "adapter"} <= {p.cfg.peft.method for p in plans}
    # By computation: Part 3 lists runs Part 1 or 2 made under their own ids.
    committed = {records.computation(r["run_id"]) for r in csv.DictReader(open(ROOT / "study/part3.csv"))}
    for plan in plans:
        assert plan.lr_source.startswith("sweep"), (plan.cfg.peft.method, plan.lr_source)
        assert plan.cfg.train.learning_rate == picks[f"part3/{plan.cfg.peft.method}/study"]["learning_rate"]
        # The same runs as the committed study's, so a fresh clone finds them done instead of training them again.
        assert records.computation(plan.run_id) in committed, plan.run_id


def test_a_pick_not_used_names_the_fields_that_differ(tmp_path, capsys):
    from common import picks
    from common.config import load_config
    from common.records import write_json

    out = tmp_path / "results"
    cfg = load_config("configs/part1_distilbert_lora.yaml", "quick", (f"output.dir={out}",))
    fp, runtime = {"train": "x", "test": "y"}, {"device_type": "cpu", "precision": "bf16"}
    made_for = picks.selection(cfg, fp, runtime)
    write_json(picks.picks_path(str(out)), {picks.pick_name(cfg): {"learning_rate": 0.5, "grid": [0.5], "scores": [],
                                                                    "selection": made_for}})
    # Another machine, another dropout kernel, another attention path: the same science, the pick is used.
    other = load_config("configs/part1_distilbert_lora.yaml", "quick", (f"output.dir={out}", "train.dropout_kernel=torch",
                                                                         "model.attn_implementation=eager"))
    assert picks.apply_pick(other, fp, {"device_type": "cuda", "precision": "bf16"})[0].train.learning_rate == 0.5
    # Another precision and LoRA rank: not the same science; the message says which fields.
    other = load_config("configs/part1_distilbert_lora.yaml", "quick", (f"output.dir={out}", "peft.lora.r=4"))
    capsys.readouterr()
    new, _ = picks.apply_pick(other, fp, {"device_type": "cpu", "precision": "fp32"})
    err = capsys.readouterr().err
    assert new.train.learning_rate == cfg.train.learning_rate
    assert "not used: it differs in peft.lora.r (8 there, 4 here), precision ('bf16' there, 'fp32' here)" in err


def test_a_pick_is_found_by_every_part_that_plans_the_same_computation(tmp_path, monkeypatch):
    """Part 3's study sweep picks LoRA's rate; in an output folder holding only Part 3's picks, Part 1's LoRA (the
    same computation: same model, data, settings) plans at that rate, not at its YAML's."""
    import argparse

    from common.plan import plan_runs

    from conftest import IMDB, ROOT

    out = tmp_path / "results"
    committed = json.loads((ROOT / "study/sweep/picks.json").read_text())
    only_part3 = {k: v for k, v in committed.items() if k.startswith("part3/")}
    (out / "sweep").mkdir(parents=True)
    (out / "sweep" / "picks.json").write_text(json.dumps(only_part3))
    args = argparse.Namespace(config=["configs/part1_distilbert_lora.yaml"], profile="study", dry_run=True,
                              set=[f"data.dir={IMDB}", "train.precision=bf16", "train.seeds=[0]", f"output.dir={out}"])
    plan = plan_runs("part1", args)[0]
    pick = only_part3["part3/lora/study"]
    assert plan.lr_source.startswith("sweep") and plan.cfg.train.learning_rate == pick["learning_rate"] == 1e-3
    # Without it, the committed study's pick serves (a user's folder finds the study's picks)...
    (out / "sweep" / "picks.json").write_text("{}")
    assert plan_runs("part1", args)[0].cfg.train.learning_rate == 1e-3
    # ... and without either, the profile's rate (3e-3): the pick is what moved it.
    monkeypatch.setattr(records, "STUDY_DIR", tmp_path / "no-study")
    assert plan_runs("part1", args)[0].cfg.train.learning_rate == 3e-3
