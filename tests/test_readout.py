"""The last layer computed for the head's row only: the same logits, gradients and random stream for every method,
in training and evaluation; picked where that holds, refused where it does not."""
import pytest
import torch

from common.config import load_config
from common.errors import UserError

from conftest import PART3_METHODS, TINY, VOCAB


def _cfg(method: str, tiny_data, *sets):
    return load_config(f"configs/part3_bert_{method}.yaml", str(TINY["part3"]),
                       (f"data.dir={tiny_data}", f"model.tokenizer={VOCAB}", "train.precision=fp32", *sets))


def _batch():
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(1000, 5000, (4, 24), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0  # a padded review
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 1, 0])}


def _step(model, batch):
    """One training forward and backward from a fixed seed: logits, every gradient, and the next random draw."""
    model.train()
    torch.manual_seed(11)
    out = model(**batch)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.logits.detach(), grads, torch.rand(4)


@pytest.mark.parametrize("method", PART3_METHODS)
def test_cls_only_last_layer_is_the_same_computation(method, tiny_data):
    from common.models import build_model
    from common.readout import last_layer_label

    batch = _batch()
    full = build_model(_cfg(method, tiny_data, "model.last_layer=full"))
    cls = build_model(_cfg(method, tiny_data, "model.last_layer=cls"))
    assert last_layer_label(full) == "full" and last_layer_label(cls) == "cls"
    (la, ga, ra), (lb, gb, rb) = _step(full, batch), _step(cls, batch)
    # Dropout is on (p = 0.1): equal logits need the same masks on the [CLS] row, equal next draws the same stream.
    assert torch.allclose(la, lb, atol=1e-5), (la - lb).abs().max()
    assert torch.equal(ra, rb)
    assert ga.keys() == gb.keys() and ga
    for name in ga:
        assert torch.allclose(ga[name], gb[name], atol=1e-5, rtol=1e-4), name
    full.eval()
    cls.eval()
    with torch.no_grad():
        assert torch.allclose(full(**batch).logits, cls(**batch).logits, atol=1e-5)


def test_cls_only_skips_the_last_layers_products_but_not_its_keys():
    """Shapes inside the last layer: attention over all 24 positions, feed-forward for one row."""
    from transformers import BertConfig, BertForSequenceClassification

    from common.dropout import swap_dropout
    from common.readout import last_layer_for_cls_only

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=6000, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=64))
    swap_dropout(model)
    assert last_layer_for_cls_only(model) and last_layer_for_cls_only(model)  # a second call changes nothing
    rows = {}

    def seen(name):
        def hook(module, inputs, output):
            rows.setdefault(name, inputs[0].shape[1])  # returns None: the output stays as it was
        return hook

    for name in ("attention.self.key", "attention.output.dense", "intermediate.dense", "output.dense"):
        model.bert.encoder.layer[1].get_submodule(name).register_forward_hook(seen(name))
    model.bert.encoder.layer[0].intermediate.dense.register_forward_hook(seen("layer0 ffn"))
    batch = _batch()
    model.train()(**batch).loss.backward()
    assert rows == {"attention.self.key": 24, "attention.output.dense": 1, "intermediate.dense": 1,
                    "output.dense": 1, "layer0 ffn": 24}


def test_auto_picks_cls_where_it_is_the_same_computation(tiny_data):
    from common.devices import pick_last_layer

    cfg = _cfg("full", tiny_data)
    assert pick_last_layer(cfg, "cpu", "bert") == "cls"
    assert pick_last_layer(cfg, "cuda", "bert") == "full"  # torch's dropout kernel: masks drawn per row shape
    assert pick_last_layer(cfg, "cpu", "distilbert") == "full"
    assert pick_last_layer(_cfg("full", tiny_data, "train.dropout_kernel=torch"), "cpu", "bert") == "full"


@pytest.mark.parametrize("sets, expect", [
    (("train.dropout_kernel=torch",), "needs a fast train.dropout_kernel"),
    (("model.last_layer=sideways",), "model.last_layer"),
])
def test_cls_where_it_would_change_the_run_is_refused(tiny_data, sets, expect):
    from common.models import build_model

    with pytest.raises(UserError, match=expect):
        build_model(_cfg("full", tiny_data, "model.last_layer=cls", *sets), meta=True)


def test_cls_on_distilbert_is_refused(tiny_data):
    from common.models import build_model

    cfg = load_config("configs/part1_distilbert_full.yaml", str(TINY["part1"]),
                      (f"data.dir={tiny_data}", f"model.tokenizer={VOCAB}", "model.last_layer=cls"))
    with pytest.raises(UserError, match="distilbert classifies its own way"):
        build_model(cfg, meta=True)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_cls_only_last_layer_is_the_same_under_gradient_checkpointing(method, tiny_data):
    """Checkpointed layers run their forward twice; the recomputation must draw the same masks for all rows."""
    from common.models import build_model

    batch = _batch()
    got = []
    for last in ("full", "cls"):
        model = build_model(_cfg(method, tiny_data, f"model.last_layer={last}", "train.gradient_checkpointing=true"))
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        runs = []
        ffn = [m for n, m in model.named_modules() if n.endswith("layer.1.intermediate.dense")]
        ffn[-1].register_forward_hook(lambda *a: runs.append(1))
        got.append(_step(model, batch))
        assert len(runs) == 2  # forward, then the recomputation in backward: checkpointing is on
    (la, ga, ra), (lb, gb, rb) = got
    assert torch.allclose(la, lb, atol=1e-5) and torch.equal(ra, rb) and ga.keys() == gb.keys() and ga
    for name in ga:
        assert torch.allclose(ga[name], gb[name], atol=1e-5, rtol=1e-4), name


@pytest.mark.parametrize("method", [m for m in PART3_METHODS if m != "adapter"])
def test_training_attention_is_berts_eager_attention(method, tiny_data, monkeypatch):
    """common/dropout.py's training attention (fewer passes, row 0's query in the last layer) against BERT's own
    eager forward with the same fast dropout: same logits, gradients and random stream, padding and prefixes in."""
    from transformers.models.bert.modeling_bert import BertSelfAttention

    import common.dropout
    from common.models import build_model

    batch = _batch()
    fast = common.dropout.bert_attention_in_training
    calls = []

    def counted(*args):
        calls.append(1)
        return fast(*args)

    def berts_own(self, hidden_states, attention_mask, past_key_values, cache_position):
        return BertSelfAttention.forward(self, hidden_states, attention_mask, None, None, past_key_values, False,
                                         cache_position)

    got = []
    for impl in (counted, berts_own):
        monkeypatch.setattr(common.dropout, "bert_attention_in_training", impl)
        got.append(_step(build_model(_cfg(method, tiny_data)), batch))
    assert len(calls) == 2
    (la, ga, ra), (lb, gb, rb) = got
    assert torch.allclose(la, lb, atol=1e-5), (la - lb).abs().max()
    assert torch.equal(ra, rb) and ga.keys() == gb.keys() and ga
    for name in ga:
        assert torch.allclose(ga[name], gb[name], atol=1e-5, rtol=1e-4), name


def test_adapterhub_keeps_its_own_attention(tiny_data, monkeypatch):
    """AdapterHub replaces BERT's attention classes with its own (SDPA with its dropout inside): the project's
    training attention never runs for it, and the run says so (its attention label is plain sdpa)."""
    import common.dropout
    from common.dropout import attention_label
    from common.models import build_model

    calls = []
    monkeypatch.setattr(common.dropout, "bert_attention_in_training",
                        lambda *a: calls.append(1) or (_ for _ in ()).throw(AssertionError("not for adapters")))
    model = build_model(_cfg("adapter", tiny_data))
    logits, grads, _ = _step(model, _batch())
    assert calls == [] and attention_label(model) == "sdpa" and bool(torch.isfinite(logits).all()) and grads
