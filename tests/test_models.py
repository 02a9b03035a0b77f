"""Dry-run parameter counts at the published architectures; impossible combinations refused with exit 2."""
import pytest

from conftest import TINY, VOCAB, last_json, run_cli, run_main, tree

SEED_ARCH = ["--set", "model.init=random", "--set", f"model.tokenizer={VOCAB}"]


@pytest.mark.parametrize("part,config,trainable,total", [
    ("part1", "configs/part1_distilbert_full.yaml", 66_955_010, 66_955_010),
    ("part1", "configs/part1_distilbert_lora.yaml", 739_586, 67_694_596),
    ("part2", "configs/part2_bert_full.yaml", 109_483_778, 109_483_778),
    ("part2", "configs/part2_bert_prefix.yaml", 9_866_242, 119_350_020),
    # Part 3 on bert-base's architecture; the classifier is 768 x 2 + 2 = 1,538 of each PEFT count.
    ("part3", "configs/part3_bert_full.yaml", 109_483_778, 109_483_778),
    ("part3", "configs/part3_bert_lora.yaml", 12 * 2 * (768 * 8 + 8 * 768) + 1_538, 109_780_228),  # 296,450
    ("part3", "configs/part3_bert_dora.yaml", 296_450 + 12 * 2 * 768, 109_798_660),  # + a magnitude per output
    ("part3", "configs/part3_bert_ia3.yaml", 12 * (768 + 768 + 768 + 3072) + 1_538, 109_549_828),  # 66,050
    ("part3", "configs/part3_bert_prompt.yaml", 20 * 768 + 1_538, 109_500_676),  # 16,898
    ("part3", "configs/part3_bert_ptuning.yaml", 230_914, 109_714_692),
    ("part3", "configs/part3_bert_prefix.yaml", 9_866_242, 119_350_020),
    ("part3", "configs/part3_bert_adapter.yaml", 896_066, 110_378_306),
])
def test_dry_run_counts(tiny_data, tmp_path, part, config, trainable, total, capsys):
    out = tmp_path / "results"
    rc, stdout, err = run_main(part, ["--config", config, "--dry-run", "--set", f"data.dir={tiny_data}", "--set",
                                      f"output.dir={out}", *SEED_ARCH, "--set", "data.train_samples=4",
                                      "--set", "data.val_samples=2"], capsys)
    assert rc == 0, err
    counts = last_json(stdout)
    assert (counts["trainable_params"], counts["total_params"]) == (trainable, total)
    assert "trainable" in stdout and "frozen" in stdout  # the per-module table
    assert tree(out) == []  # a dry run writes nothing under output.dir


def test_dry_run_does_not_need_the_runs_device(tiny_data, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    rc, stdout, err = run_main("part1", ["--config", "configs/part1_distilbert_lora.yaml", "--dry-run",
                                         "--set", f"data.dir={tiny_data}", "--set", f"output.dir={tmp_path / 'r'}",
                                         *SEED_ARCH, "--set", "data.train_samples=4", "--set", "data.val_samples=2",
                                         "--set", "train.device=cuda"], capsys)
    assert rc == 0, err
    assert last_json(stdout)["trainable_params"] == 739_586


def _refused(part, config, data, tmp_path, *sets, capsys=None, profile=True):
    """Exit 2, one clear message, nothing under output.dir. In-process (capsys) or as a subprocess."""
    out = tmp_path / "results"
    args = ["--config", config, "--set", f"data.dir={data}", "--set", f"output.dir={out}", *SEED_ARCH]
    if profile:
        args += ["--profile", str(TINY[part])]
    for s in sets:
        args += ["--set", s]
    if capsys is None:
        r = run_cli(part, args)
        rc, err = r.returncode, r.stderr
    else:
        rc, _, err = run_main(part, args, capsys)
    assert rc == 2, err
    assert "Traceback" not in err and err.startswith("error")
    assert tree(out) == []
    return err


def test_prefix_on_distilbert_is_refused(tiny_data, tmp_path):
    err = _refused("part1", "configs/part1_distilbert_full.yaml", tiny_data, tmp_path, "peft.method=prefix")
    assert "peft.method" in err and "past_key_values" in err and "DistilBert" in err


def test_prefix_with_gradient_checkpointing_is_refused(tiny_data, tmp_path, capsys):
    err = _refused("part2", "configs/part2_bert_prefix.yaml", tiny_data, tmp_path, "train.gradient_checkpointing=true",
                   capsys=capsys)
    assert "train.gradient_checkpointing" in err


@pytest.mark.parametrize("part,config,length", [("part2", "configs/part2_bert_prefix.yaml", 500),
                                                ("part1", "configs/part1_distilbert_lora.yaml", 513)])
def test_length_beyond_position_limit_is_refused(tiny_data, tmp_path, part, config, length, capsys):
    err = _refused(part, config, tiny_data, tmp_path, f"data.max_length={length}", capsys=capsys)
    assert "data.max_length" in err and "512" in err


def test_prefix_at_the_position_limit_is_allowed(tiny_data, capsys):
    # 492 tokens + 20 virtual tokens = 512 positions: exactly the limit.
    rc, _, err = run_main("part2", ["--config", "configs/part2_bert_prefix.yaml", "--dry-run", "--profile",
                                    TINY["part2"], "--set", f"data.dir={tiny_data}", *SEED_ARCH,
                                    "--set", "data.max_length=492"], capsys)
    assert rc == 0, err


def test_lora_targets_that_match_nothing_name_the_real_modules(tiny_data, tmp_path, capsys):
    err = _refused("part1", "configs/part1_distilbert_lora.yaml", tiny_data, tmp_path,
                   "peft.lora.target_modules=[query, value]", capsys=capsys)
    assert "peft.lora.target_modules" in err and "q_lin" in err and "v_lin" in err


def test_unknown_method_is_refused(tiny_data, tmp_path, capsys):
    err = _refused("part1", "configs/part1_distilbert_lora.yaml", tiny_data, tmp_path, "peft.method=boft",
                   capsys=capsys)
    assert "peft.method" in err and "boft" in err and "adapter" in err


def test_offline_hub_model_fails_fast_with_two_ways_out(tiny_data, tmp_path, capsys):
    err = _refused("part1", "configs/part1_distilbert_full.yaml", tiny_data, tmp_path, "model.init=pretrained",
                   "model.name_or_path=nobody/not-a-cached-model", capsys=capsys)
    assert "nobody/not-a-cached-model" in err and "PROFILE=quick" in err and "local folder" in err


def test_seed_settings_on_cpu_ask_for_an_explicit_flag(tmp_path):
    from conftest import IMDB
    err = _refused("part1", "configs/part1_distilbert_full.yaml", IMDB, tmp_path, profile=False)
    assert "train.allow_cpu=true" in err and " h " in err


def test_unwritable_output_dir_is_refused_before_training(tiny_data, tmp_path, capsys):
    blocker = tmp_path / "plain_file"
    blocker.write_text("not a folder")
    rc, out, err = run_main("part1", ["--config", "configs/part1_distilbert_lora.yaml", "--profile", str(TINY["part1"]),
                                      "--set", f"data.dir={tiny_data}", "--set", f"output.dir={blocker}/results",
                                      "--set", f"model.tokenizer={VOCAB}"], capsys)
    assert rc == 2 and err.startswith("error") and "--set output.dir" in err and "is a file" in err
    assert "[run]" not in out and blocker.read_text() == "not a folder"


def test_train_pooler_is_counted_and_refused_where_there_is_no_pooler(tiny_data, tmp_path, capsys):
    args = ["--config", "configs/part2_bert_prefix.yaml", "--dry-run", "--set", f"data.dir={tiny_data}",
            "--set", f"output.dir={tmp_path / 'r'}", *SEED_ARCH, "--set", "data.train_samples=4",
            "--set", "data.val_samples=2"]
    rc, stdout, err = run_main("part2", args + ["--set", "peft.train_pooler=true"], capsys)
    assert rc == 0, err
    # bert-base's pooler: 768 x 768 weights + 768 biases on top of the reference's 9,866,242.
    assert last_json(stdout)["trainable_params"] == 9_866_242 + 768 * 768 + 768
    err = _refused("part1", "configs/part1_distilbert_lora.yaml", tiny_data, tmp_path, "peft.train_pooler=true",
                   capsys=capsys)
    assert "peft.train_pooler" in err and "no pooler" in err


@pytest.mark.parametrize("sets,expect", [
    (["peft.method=ia3"], "peft.ia3.target_modules: ['key', 'value', 'output.dense'] match no module"),
    (["peft.method=lora", "peft.lora.target_modules=[all-linear]"], "'all-linear' on DistilBertForSequenceClassification"
                                                                      " also wraps ['pre_classifier']"),
    (["peft.method=prompt", "data.max_length=500"], "500 + 20 virtual tokens = 520 exceeds"),
    (["peft.method=ptuning", "data.max_length=500"], "500 + 20 virtual tokens = 520 exceeds"),
    (["peft.method=adapter", "peft.train_pooler=true"], "peft.train_pooler"),
])
def test_impossible_method_model_pairs_are_refused_on_distilbert(tiny_data, tmp_path, capsys, sets, expect):
    err = _refused("part1", "configs/part1_distilbert_full.yaml", tiny_data, tmp_path, *sets, capsys=capsys)
    assert expect in err


def test_prompt_methods_and_adapters_build_on_distilbert_too(tiny_data, tmp_path, capsys):
    """peft's prompt methods cannot infer DistilBERT's dimensions (token_dim...): the builder gives them."""
    for method, trainable in (("prompt", 20 * 768 + 590_592 + 1_538), ("ptuning", None), ("adapter", None)):
        rc, stdout, err = run_main("part1", ["--config", "configs/part1_distilbert_full.yaml", "--dry-run",
                                             "--set", f"data.dir={tiny_data}", "--set", f"output.dir={tmp_path}/r",
                                             *SEED_ARCH, "--set", "data.train_samples=4", "--set",
                                             "data.val_samples=2", "--set", f"peft.method={method}"], capsys)
        assert rc == 0, err
        if trainable:  # the prompt, plus DistilBERT's pre_classifier and classifier (peft's head modules)
            assert last_json(stdout)["trainable_params"] == trainable
