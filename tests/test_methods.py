"""The method registry: each method's trainable count from its formula against the model peft builds, refusals before
training, and AdaLoRA's rank schedule running at every step."""
import json

import pytest

from common import methods
from common.config import load_config
from common.models import build_model, count_parameters, load_model_config

from conftest import PART3_METHODS, ROOT, run_main, tiny_args, tree


def expected_trainable(method: str, h: int, layers: int, ffn: int, head: int, pooler: bool = False) -> int:
    """Trainable parameters from each method's formula (docs/methods.md gives the bert-base arithmetic): h hidden,
    `layers` encoder layers, ffn feed-forward width, head what trains besides the method (classifier, and the
    pooler where `pooler`)."""
    qv = 2 * layers  # modules named query and value
    lns = 2 * layers + 1  # LayerNorms: embeddings, then two a layer
    r = 8
    linears = {"query": (h, h), "key": (h, h), "value": (h, h), "attention.output.dense": (h, h),
               "intermediate.dense": (h, ffn), "output.dense": (ffn, h)}

    def lokr(n: int) -> int:  # peft factors n as a x b (a <= b, closest); w1 a x a whole, w2 rank r: 2 r b
        a = max(d for d in range(1, int(n ** 0.5) + 1) if n % d == 0)
        b = n // a
        return a * a + (b * b if r >= b / 2 else 2 * r * b)

    per = {
        "full": None,
        "head": 0,
        # every bias: embeddings LayerNorm; per layer q, k, v, attention output, its LayerNorm, the feed-forward
        # in (ffn wide) and out, its LayerNorm; the pooler's dense (part of the head where the pooler trains)
        "bitfit": h + layers * (7 * h + ffn) + (0 if pooler else h),
        "lora": qv * r * 2 * h,
        "dora": qv * (r * 2 * h + h),  # + a magnitude per output feature
        "lora_all": layers * sum(r * (i + o) for i, o in linears.values()),
        # keys and values (h each); output.dense matches both outputs, each a vector over its input (h, ffn)
        "ia3": layers * (3 * h + ffn),
        "prompt": 20 * h,
        "ptuning": 20 * h + (h * 128 + 128) + (128 * 128 + 128) + (128 * h + h),  # embedding + MLP h-128-128-h
        "prefix": 20 * h + (h * 512 + 512) + (512 * 2 * layers * h + 2 * layers * h),  # embedding + MLP to K, V
        "adapter": layers * ((h * (h // 16) + h // 16) + (h // 16 * h + h)),  # down and up projection a layer
        "adalora": qv * (12 * 2 * h + 12),  # init_r 12: P (12 x h), Q (h x 12), E (12)
        "loha": qv * 2 * r * 2 * h,  # two rank-8 pairs
        "lokr": qv * lokr(h),
        "vera": qv * (256 + h),  # d (r = 256) and b (h) a layer
        "oft": qv * (h // 32) * (32 * 31 // 2),  # blocks of 32, each 32 * 31 / 2 free values
        "fourierft": qv * 1000,
        "lntuning": lns * 2 * h,
    }[method]
    return None if per is None else per + head


def _trainable(path, profile="default", sets=()):
    cfg = load_config(str(path), profile, tuple(sets))
    model = build_model(cfg, load_model_config(cfg), meta=True)
    by_hand = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return cfg, count_parameters(model)["trainable"], by_hand


@pytest.mark.parametrize("method", PART3_METHODS)
def test_trainable_counts_match_their_formulas_on_bert_base_and_minilm(method):
    path = ROOT / f"configs/part3_bert_{method}.yaml"
    # The reference settings: bert-base-uncased, its pooler frozen, the classifier (768 x 2 + 2) trained.
    cfg, counted, by_hand = _trainable(path, sets=("model.init=random",))
    want = expected_trainable(method, 768, 12, 3072, 1538)
    assert counted == by_hand == (109_483_778 if method == "full" else want), (method, counted, by_hand, want)
    # The stand-in (quick profile): MiniLM-L6, hidden 384, 6 layers; the pooler (384 x 384 + 384) trains too.
    cfg, counted, by_hand = _trainable(path, "quick")
    want = expected_trainable(method, 384, 6, 1536, 770 + 147_840, pooler=True)
    assert counted == by_hand == (22_713_986 if method == "full" else want), (method, counted, by_hand, want)
    # The config's header states the reference-settings count.
    if want is not None:
        want = expected_trainable(method, 768, 12, 3072, 1538)
        assert f"{want:,}" in path.read_text().split("\npart:")[0], (method, want)


def test_the_registry_is_the_one_list_of_methods():
    from common.methods import label as method_name
    from common.report.plots import method_color
    from common.schema import METHODS, PeftCfg, method_section

    assert METHODS == tuple(methods.REGISTRY) and METHODS[0] == "full"
    for m in METHODS:
        entry = methods.get(m)
        assert method_name(m) == entry.label and method_color(m) == entry.color
        assert (ROOT / f"configs/part3_bert_{m}.yaml").is_file()
        assert method_section(m) == entry.section and (entry.section is None or hasattr(PeftCfg(), entry.section))
        assert len(entry.grid) == 3 and list(entry.grid) == sorted(entry.grid)
    assert len({methods.get(m).color for m in METHODS}) == len(METHODS)  # one colour each
    assert len({methods.get(m).label for m in METHODS}) == len(METHODS)


def test_a_method_without_a_grid_in_its_config_searches_the_registrys(tmp_path):
    path = tmp_path / "vera.yaml"
    path.write_text("part: part3\npeft:\n  method: vera\n")
    sources = {}
    cfg = load_config(str(path), sources=sources)
    assert cfg.train.lr_grid == list(methods.get("vera").grid) and "common/methods.py" in sources["train.lr_grid"]
    path.write_text("part: part3\npeft:\n  method: vera\ntrain:\n  lr_grid: [1.0e-3, 2.0e-3]\n")
    assert load_config(str(path)).train.lr_grid == [1e-3, 2e-3]  # the file's own grid wins


@pytest.mark.parametrize("method, sets, says", [
    ("oft", ["peft.oft.block_size=5"], "peft.oft.block_size: OFT splits each targeted layer's inputs into blocks of 5"),
    ("fourierft", ["peft.fourierft.n_frequency=100000"], "peft.fourierft.n_frequency: 100000 spectral coefficients"),
    ("adalora", ["train.gradient_checkpointing=true"], "train.gradient_checkpointing: AdaLoRA scores each rank"),
    ("adalora", ["peft.adalora.target_r=16"], "peft.adalora.target_r: must be <= init_r (12)"),
    ("vera", ["peft.vera.target_modules=[nowhere]"], "peft.vera.target_modules: ['nowhere'] match no module"),
])
def test_what_a_method_cannot_do_is_refused_before_training(method, sets, says, tiny_data, tmp_path, capsys):
    out = tmp_path / "results"
    args = tiny_args("part3", tiny_data, out, configs=[f"configs/part3_bert_{method}.yaml"])
    for s in sets:
        args += ["--set", s]
    rc, _, err = run_main("part3", args, capsys)
    assert rc == 2 and says in " ".join(err.split()), err
    assert tree(out) == []  # refused while planning: nothing trained, nothing written


def test_adalora_reallocates_ranks_after_every_optimizer_step(tiny_data, tmp_path, monkeypatch, capsys):
    from peft.tuners.adalora import AdaLoraModel

    calls = []
    real = AdaLoraModel.update_and_allocate

    def counted(self, global_step):
        calls.append((global_step, self.peft_config["default"].total_step))
        return real(self, global_step)

    monkeypatch.setattr(AdaLoraModel, "update_and_allocate", counted)
    out = tmp_path / "results"
    args = tiny_args("part3", tiny_data, out, configs=["configs/part3_bert_adalora.yaml"])
    rc, _, err = run_main("part3", args, capsys)
    assert rc == 0, err
    rec = json.loads(next((out / "runs").glob("part3-adalora-*.json")).read_text())
    steps = rec["metrics"]["train_steps"]
    # Once per optimizer step, numbered from 0, with the schedule set from the run's own step count.
    assert steps > 1 and calls == [(i, steps) for i in range(steps)]
