"""The fast dropout kernel: its drop rate, unbiased scaling, gradient, seeding, and where it is switched on."""
import math

import pytest
import torch

from common.config import load_config
from common.devices import pick_attention, pick_dropout_kernel
from common.dropout import FastDropout, attention_label, eager_attention_in_training, keep_mask, rounded_p, swap_dropout


def _within(observed: float, p: float, n: int, sigmas: float = 5.0) -> bool:
    return abs(observed - p) < sigmas * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("bits", ["torch", "sfc64"])
@pytest.mark.parametrize("p", [0.05, 0.1, 0.5, 0.9])
def test_drop_rate_matches_p_in_every_16_bit_chunk(p, bits):
    torch.manual_seed(0)
    n = 2_000_000
    mask = keep_mask((n,), p, bits=bits)
    assert mask.dtype == torch.bool
    dropped = 1.0 - mask.double().mean().item()
    assert _within(dropped, rounded_p(p), n)
    # Each of the four 16-bit chunks of a random 64-bit word drops at p (none is short of random bits).
    for col in mask.view(-1, 4).double().mean(0).tolist():
        assert _within(1.0 - col, rounded_p(p), n // 4)


def test_rounded_p_is_close_to_p():
    assert rounded_p(0.1) == 6554 / 65536 and abs(rounded_p(0.1) - 0.1) < 1e-5
    assert rounded_p(0.05) == 3277 / 65536 and rounded_p(0.0) == 0.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_output_and_gradient_scale_the_kept_values(dtype):
    torch.manual_seed(1)
    x = (torch.rand(64, 33, 17) + 0.5).to(dtype).requires_grad_(True)  # no zeros: a zero output means dropped
    drop = FastDropout(0.1).train()
    y = drop(x)
    assert y.dtype == dtype and y.shape == x.shape
    kept = y != 0
    scale = 1.0 / (1.0 - rounded_p(0.1))
    expect = (x.detach().float() * scale).to(dtype)
    assert torch.equal(y.detach()[kept], expect[kept])
    g = torch.randn_like(x)
    y.backward(g)
    assert torch.equal(x.grad[~kept], torch.zeros_like(x.grad[~kept]))
    assert torch.equal(x.grad[kept], (g.float() * scale).to(dtype)[kept])


def test_mean_is_preserved():
    torch.manual_seed(2)
    y = FastDropout(0.1).train()(torch.ones(1_000_000))
    assert abs(y.mean().item() - 1.0) < 5 * math.sqrt(rounded_p(0.1) / (1 - rounded_p(0.1)) / 1e6)


def test_eval_mode_and_zero_p_are_identity():
    x = torch.randn(8, 8)
    assert FastDropout(0.1).eval()(x) is x
    assert FastDropout(0.0).train()(x) is x


@pytest.mark.parametrize("bits", ["torch", "sfc64"])
def test_masks_follow_torch_seed(bits):
    torch.manual_seed(3)
    a = keep_mask((4096,), 0.1, bits=bits)
    torch.manual_seed(3)
    b = keep_mask((4096,), 0.1, bits=bits)
    torch.manual_seed(4)
    c = keep_mask((4096,), 0.1, bits=bits)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sfc64_masks_take_one_word_of_torch_state_each_and_differ_from_torchs():
    # One 64-bit draw of torch's generator per mask, whatever its size: after it, torch's stream (the next mask's
    # seed, a restored checkpoint's state) goes on exactly as after one word.
    torch.manual_seed(6)
    a, b = keep_mask((100_000,), 0.5, bits="sfc64"), keep_mask((100_000,), 0.5, bits="sfc64")
    after = torch.randint(0, 2**31, (8,))
    torch.manual_seed(6)
    torch.empty(2, dtype=torch.int64).random_(-2**63, None)
    assert torch.equal(torch.randint(0, 2**31, (8,)), after)
    torch.manual_seed(6)
    c = keep_mask((100_000,), 0.5)
    # independent streams: the masks agree on about half the elements (5 sigma: 0.5 +- 0.008), not all
    for x, y in ((a, b), (a, c)):
        assert abs((x == y).double().mean().item() - 0.5) < 0.008


def test_swap_replaces_every_dropout_including_lora():
    from peft import LoraConfig, get_peft_model
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, attn_implementation="eager")
    model = get_peft_model(BertForSequenceClassification(cfg),
                           LoraConfig(task_type="SEQ_CLS", r=2, lora_alpha=4, lora_dropout=0.05,
                                      target_modules=["query", "value"]))
    before = sum(type(m) is torch.nn.Dropout for m in model.modules())
    # embeddings 1 + per layer 3 (attention probs, attention output, FFN output) x 2 + classifier 1 + LoRA 2 x 2
    assert before == 1 + 3 * 2 + 1 + 4
    assert swap_dropout(model) == before
    assert not any(type(m) is torch.nn.Dropout for m in model.modules())
    ps = sorted({round(m.p, 3) for m in model.modules() if isinstance(m, FastDropout)})
    assert ps == [0.05, 0.1]
    model.train()
    ids = torch.randint(0, 100, (4, 12))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1, 0, 1]))
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_auto_picks_fast_dropout_on_cpu_and_torch_on_cuda():
    cfg = load_config("configs/part1_distilbert_lora.yaml")
    assert pick_dropout_kernel(cfg, "cpu") == "fast_sfc64" and pick_dropout_kernel(cfg, "cuda") == "torch"
    # DistilBERT's SDPA cannot train eager, so with the fast kernel it is built eager; BERT keeps SDPA.
    assert pick_attention(cfg, "cpu", "distilbert") == "eager" and pick_attention(cfg, "cpu", "bert") == "sdpa"
    assert pick_attention(cfg, "cuda", "distilbert") == "sdpa"
    cfg = load_config("configs/part1_distilbert_lora.yaml", sets=("train.dropout_kernel=torch",))
    assert (pick_dropout_kernel(cfg, "cpu"), pick_attention(cfg, "cpu", "distilbert")) == ("torch", "sdpa")
    cfg = load_config("configs/part1_distilbert_lora.yaml", sets=("model.attn_implementation=sdpa",))
    assert (pick_dropout_kernel(cfg, "cpu"), pick_attention(cfg, "cpu", "distilbert")) == ("fast_sfc64", "sdpa")
    cfg = load_config("configs/part1_distilbert_lora.yaml", sets=("train.dropout_kernel=fast",))  # torch's bits
    assert (pick_dropout_kernel(cfg, "cuda"), pick_attention(cfg, "cpu", "distilbert")) == ("fast", "eager")


def _tiny_bert(attn: str, **kw):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, attn_implementation=attn, **kw)
    return BertForSequenceClassification(cfg)


def test_bert_sdpa_trains_through_eager_attention_and_evaluates_with_sdpa(monkeypatch):
    import common.dropout

    model = _tiny_bert("sdpa")
    reference = _tiny_bert("eager")  # same seed, same weights
    swap_dropout(model)
    assert eager_attention_in_training(model) == 2 and attention_label(model) == "sdpa (eager while training)"
    calls = []
    fast = common.dropout.bert_attention_in_training
    monkeypatch.setattr(common.dropout, "bert_attention_in_training", lambda *a: calls.append(1) or fast(*a))
    ids = torch.randint(0, 100, (3, 10))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0  # padding: the SDPA-shaped mask must work in the eager path too
    model.train()
    out = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 0]))
    out.loss.backward()
    assert len(calls) == 2  # both layers trained through the eager attention with the fast kernel's masks
    model.eval()
    reference.eval()
    calls.clear()
    with torch.no_grad():
        got = model(input_ids=ids, attention_mask=mask).logits
        want = reference(input_ids=ids, attention_mask=mask).logits
    assert not calls and torch.allclose(got, want, atol=1e-5)  # evaluation: SDPA, same maths as eager
    # The eager path with SDPA's mask gives the eager model's numbers: dropout modules set to identity, while
    # dropout_prob > 0 still routes training through the eager path.
    nodrop, nodrop_ref = _tiny_bert("sdpa"), _tiny_bert("eager")
    eager_attention_in_training(nodrop)
    for m in (nodrop, nodrop_ref):
        for name, child in list(m.named_modules()):
            if isinstance(child, torch.nn.Dropout):
                child.p = 0.0
        m.train()
    eager_calls = []
    for layer in nodrop.bert.encoder.layer:
        layer.attention.self.dropout.register_forward_hook(lambda *a: eager_calls.append(1))
    got = nodrop(input_ids=ids, attention_mask=mask).logits
    assert len(eager_calls) == 2
    assert torch.allclose(got, nodrop_ref(input_ids=ids, attention_mask=mask).logits, atol=1e-5)


@pytest.mark.parametrize("kernel, bits", [("fast", "torch"), ("fast_sfc64", "sfc64")])
def test_every_mask_of_a_bert_step_comes_from_the_kernels_bits(monkeypatch, kernel, bits):
    import common.dropout

    model = _tiny_bert("sdpa")
    n = swap_dropout(model, kernel)
    eager_attention_in_training(model)
    assert {m.bits for m in model.modules() if isinstance(m, FastDropout)} == {bits}
    drawn = []
    words = common.dropout.random_words
    monkeypatch.setattr(common.dropout, "random_words", lambda c, b, d: drawn.append(b) or words(c, b, d))
    ids = torch.randint(0, 100, (3, 10))
    model.train()(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1, 0])).loss.backward()
    # every FastDropout once, the attention probabilities (bert_attention_in_training) included
    assert drawn == [bits] * n and n == 1 + 3 * 2 + 1
