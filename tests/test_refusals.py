"""Bad input met through the command line: one message naming the file or flag and the key, exit code 2, before
any training, and nothing written under output.dir."""
import pytest

from conftest import run_main, tiny_args, tree


def _refused(part, tiny_data, tmp_path, capsys, *extra, profile=None) -> str:
    out = tmp_path / "results"
    rc, _, err = run_main(part, tiny_args(part, tiny_data, out, *extra, profile=profile), capsys)
    assert rc == 2, err
    assert err.startswith("error") and "Traceback" not in err
    assert tree(out) == []  # refused before anything was written
    return err


@pytest.mark.parametrize("extra,expect", [
    (["--set", "train.device=cuda"], "train.device: cuda requested but no CUDA GPU is visible"),
    (["--set", "train.epochs"], "--set train.epochs: expected section.key=value"),
    (["--set", "model.config_overrides={bogus_field: 3}"], "bogus_field"),
    (["--set", "model.init=pretrained", "--set", "model.name_or_path=package:no_such_pkg/model"],
     "model.name_or_path: package:no_such_pkg/model: Python package 'no_such_pkg' is not installed"),
    (["--set", "model.init=pretrained", "--set", "model.name_or_path=/nonexistent/model"],
     "model.name_or_path: local path /nonexistent/model does not exist"),
])
def test_refused_on_the_command_line(tiny_data, tmp_path, capsys, extra, expect):
    if "cuda" in " ".join(extra):
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is visible here")
    assert expect in _refused("part1", tiny_data, tmp_path, capsys, *extra)


def test_engine_ray_is_refused_under_torchrun(tiny_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    err = _refused("part1", tiny_data, tmp_path, capsys, "--engine", "ray")
    assert "--engine ray: not under torchrun" in err


@pytest.mark.parametrize("text,expect", [
    ("methods: [full, lora]\n", "methods: must map a method name to overrides"),
    ("methods:\n  boft: {train: {learning_rate: 0.1}}\n", "methods: unknown method(s) ['boft']"),
    ("extends: no_such_profile\n", "extends: no profile 'no_such_profile'"),
    ("extends: missing.yaml\n", "extends: no profile 'missing.yaml'"),
])
def test_a_bad_profile_is_refused_naming_it(tiny_data, tmp_path, capsys, text, expect):
    profile = tmp_path / "bad.yaml"
    profile.write_text(text)
    err = _refused("part1", tiny_data, tmp_path, capsys, profile=profile)
    assert f"{profile}: " in err and expect in err
