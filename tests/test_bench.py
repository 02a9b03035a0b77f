"""The benchmark wrapper runs end to end on CPU with a couple of steps (numbers meaningless; the plumbing is not)."""
import json

from conftest import IMDB


def test_gpu_bench_wrapper_on_cpu(tmp_path, capsys):
    from bench import gpu

    rc = gpu.main(["--steps", "2", "--methods", "distilbert-lora", "--eval-size", "32", "--data", str(IMDB),
                   "--out", str(tmp_path)])
    assert rc == 0
    (md,) = tmp_path.glob("*.md")
    (js,) = tmp_path.glob("*.json")
    rec = json.loads(js.read_text())
    row = rec["rows"][0]
    assert row["method"] == "distilbert-lora" and row["ratio_ms"] > 0
    assert row["project"]["trainable_params"] == row["seed"]["trainable_params"] == 739_586
    assert row["project"]["real_tokens"] > 0 and rec["env"]["transformers"] == "4.57.6"
    text = md.read_text()
    assert "Command: `" in text and "| distilbert-lora | project |" in text and "| distilbert-lora | seed |" in text


def test_gpu_bench_rejects_unknown_method(tmp_path, capsys):
    from bench import gpu

    assert gpu.main(["--steps", "1", "--methods", "gpt2-full", "--out", str(tmp_path)]) == 2
    assert "unknown" in capsys.readouterr().err
