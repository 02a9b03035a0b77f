"""Learning-rate sweep: scored on validation only, best pick per method reused by the part's reported runs."""
import csv
import json

from conftest import TINY, VOCAB


def test_sweep_picks_on_validation_and_the_part_uses_the_picks(tiny_data, tmp_path, capsys):
    from common import sweep

    out = tmp_path / "results"
    sets = [f"data.dir={tiny_data}", f"output.dir={out}", f"model.tokenizer={VOCAB}",
            f"data.cache_dir={tmp_path / 'tok'}", "train.lr_grid=[1.0e-4, 1.0e-3]", "train.lr_grid_edge_steps=0"]
    rc = sweep.main(["--part", "part1", "--profile", str(TINY["part1"]), *[x for s in sets for x in ("--set", s)]])
    assert rc == 0, capsys.readouterr().err
    picks = json.loads((out / "sweep" / "picks.json").read_text())
    assert set(picks) == {f"part1/full/{TINY['part1']}", f"part1/lora/{TINY['part1']}"}
    for p in picks.values():
        assert p["grid"] == [1e-4, 1e-3] and p["learning_rate"] in p["grid"] and len(p["scores"]) == 2
        best = max(p["scores"], key=lambda s: s["val_accuracy"])["val_accuracy"]
        assert [s for s in p["scores"] if s["learning_rate"] == p["learning_rate"]][0]["val_accuracy"] == best
    for rec_path in (out / "sweep" / "runs").glob("*.json"):
        rec = json.loads(rec_path.read_text())
        assert rec["status"] == "completed" and rec["metrics"]["val_accuracy"] is not None
        # Scored on test too (the pick is its seed's final run), each with its validation predictions beside it.
        assert (out / "sweep" / "runs" / rec["predictions_file"]).is_file()
        assert (out / "sweep" / "runs" / rec["val_predictions_file"]).is_file()
    for p in picks.values():
        gap = p["runner_up"]
        others_alive = [sc for sc in p["scores"] if sc["learning_rate"] != p["learning_rate"] and not sc["collapsed"]]
        assert (gap is None) == (not others_alive)  # a collapsed rate is no runner-up
        if gap is None:
            continue
        assert gap["learning_rate"] in p["grid"] and gap["learning_rate"] != p["learning_rate"]
        assert gap["ci"][0] <= gap["diff"] <= gap["ci"][1] and gap["resolved"] == (gap["ci"][0] > 0 or gap["ci"][1] < 0)
    rows = list(csv.DictReader(open(out / "part1.csv")))
    assert len(rows) == 2
    for row in rows:
        pick = picks[f"part1/{row['method']}/{TINY['part1']}"]
        assert float(row["learning_rate"]) == pick["learning_rate"] and row["lr_source"].startswith("sweep")
        # Seed 0's final run is the sweep's run at the pick: promoted, not trained again, its files beside it.
        rec = json.loads((out / "runs" / f"{row['run_id']}.json").read_text())
        swept = json.loads((out / rec["promoted_from"]).read_text())
        assert rec["run_id"] == swept["run_id"] and rec["metrics"] == swept["metrics"]
        assert rec["config"]["train"]["learning_rate"] == pick["learning_rate"]
        assert (out / "runs" / rec["predictions_file"]).read_bytes() == \
            (out / "sweep" / "runs" / rec["predictions_file"]).read_bytes()
    assert "[reuse]" in capsys.readouterr().out
    assert "Learning-rate selection" in (out / "summary.md").read_text()
    # Again: every run is skipped and the picks file is left as it was (no new date for the same decision).
    before = (out / "sweep" / "picks.json").read_bytes()
    assert sweep.main(["--part", "part1", "--profile", str(TINY["part1"]), *[x for s in sets for x in ("--set", s)]]) == 0
    assert (out / "sweep" / "picks.json").read_bytes() == before


def test_a_pick_for_another_setup_is_not_used(tiny_data, tmp_path, capsys):
    from common import picks
    from common.config import load_config

    out = tmp_path / "results"
    cfg = load_config("configs/part1_distilbert_lora.yaml", str(TINY["part1"]), (f"output.dir={out}",))
    from common.records import write_json
    write_json(picks.picks_path(str(out)), {picks.pick_name(cfg): {"learning_rate": 0.5, "grid": [0.5],
                                                                    "selection_key": "other", "scores": []}})
    new, source = picks.apply_pick(cfg, {"train": "x", "test": "y"}, {"device_type": "cpu"})
    assert new.train.learning_rate == cfg.train.learning_rate and source == "config"


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
