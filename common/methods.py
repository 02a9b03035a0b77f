"""PEFT methods: one small builder per method (full fine-tuning is the null one) and what each must be refused for.

A new method is a `peft.<section>` dataclass in common/config.py, a builder here, and a line in BUILDERS.
"""
from __future__ import annotations

from common.errors import UserError
from common.schema import RunCfg

ADAPTER_NAME = "imdb"  # AdapterHub adapters are named; one per model here


def _heads(cfg: RunCfg) -> dict:
    # peft adds the classifier head (and DistilBERT's pre_classifier, whose name contains "classifier") itself;
    # the pooler joins them when asked: trained whole and saved with the adapter.
    return {"modules_to_save": ["pooler"]} if cfg.peft.train_pooler else {}


def _targets(modules: list):
    return "all-linear" if list(modules) == ["all-linear"] else list(modules)


def _prompt_dims(config) -> dict:
    """What peft's prompt methods cannot infer on every architecture (DistilBERT names them dim/n_layers/n_heads;
    its config maps the standard names, so reading them here works for BERT and DistilBERT alike)."""
    return {"token_dim": config.hidden_size, "num_layers": config.num_hidden_layers,
            "num_attention_heads": config.num_attention_heads, "num_transformer_submodules": 1}


def _lora(cfg: RunCfg, model, use_dora: bool = False):
    from peft import LoraConfig, TaskType, get_peft_model

    lo = cfg.peft.lora
    return get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=lo.r, lora_alpha=lo.alpha,
                                            lora_dropout=lo.dropout, target_modules=_targets(lo.target_modules),
                                            use_dora=use_dora, **_heads(cfg)))


def _dora(cfg: RunCfg, model):
    return _lora(cfg, model, use_dora=True)  # LoRA's settings plus a trained magnitude per output feature


def _ia3(cfg: RunCfg, model):
    from peft import IA3Config, TaskType, get_peft_model

    c = cfg.peft.ia3
    return get_peft_model(model, IA3Config(task_type=TaskType.SEQ_CLS, target_modules=list(c.target_modules),
                                           feedforward_modules=list(c.feedforward_modules), **_heads(cfg)))


def _prompt(cfg: RunCfg, model):
    from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

    c = cfg.peft.prompt
    init = PromptTuningInit.SAMPLE_VOCAB if c.init == "vocab" else PromptTuningInit.RANDOM
    return get_peft_model(model, PromptTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=c.num_virtual_tokens,
                                                    prompt_tuning_init=init, **_prompt_dims(model.config),
                                                    **_heads(cfg)))


def _ptuning(cfg: RunCfg, model):
    from peft import PromptEncoderConfig, TaskType, get_peft_model

    c = cfg.peft.ptuning
    return get_peft_model(model, PromptEncoderConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=c.num_virtual_tokens,
                                                     encoder_hidden_size=c.encoder_hidden_size,
                                                     encoder_reparameterization_type=c.encoder_type,
                                                     **_prompt_dims(model.config), **_heads(cfg)))


def _prefix(cfg: RunCfg, model):
    from peft import PrefixTuningConfig, TaskType, get_peft_model

    c = cfg.peft.prefix
    return get_peft_model(model, PrefixTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=c.num_virtual_tokens,
                                                    prefix_projection=c.prefix_projection,
                                                    encoder_hidden_size=c.encoder_hidden_size,
                                                    init_weights="zero" if c.init == "zero" else None, **_heads(cfg)))


def _adapter(cfg: RunCfg, model):
    """AdapterHub bottleneck adapter; the classification head (and the pooler, if asked) trains with it, as peft's
    modules_to_save does for the peft methods."""
    import adapters
    from adapters import DoubleSeqBnConfig, SeqBnConfig

    c = cfg.peft.adapter
    kind = {"seq_bn": SeqBnConfig, "double_seq_bn": DoubleSeqBnConfig}[c.config]
    try:
        adapters.init(model)
    except (ValueError, KeyError, AttributeError) as e:
        raise UserError(f"peft.method: adapter: AdapterHub (adapters 1.3.0) does not support "
                        f"{type(model).__name__} ({model.config.model_type}): {e}") from None
    model.add_adapter(ADAPTER_NAME, config=kind(reduction_factor=c.reduction_factor))
    model.train_adapter(ADAPTER_NAME)  # freezes everything else and activates the adapter
    for name, p in model.named_parameters():  # classifier (and DistilBERT's pre_classifier), bert.pooler.*
        if "classifier" in name.split(".")[0] or (cfg.peft.train_pooler and ".pooler." in f".{name}"):
            p.requires_grad_(True)
    return model


BUILDERS = {"lora": _lora, "dora": _dora, "ia3": _ia3, "prompt": _prompt, "ptuning": _ptuning, "prefix": _prefix,
            "adapter": _adapter}
LIBRARIES = {"full": "transformers", "adapter": "adapters"}  # the others: peft


def library(method: str) -> str:
    return LIBRARIES.get(method, "peft")


def wrap(cfg: RunCfg, model):
    """The model a method trains: unchanged for full fine-tuning (every weight trains), else wrapped."""
    if cfg.peft.method == "full":
        return model
    return BUILDERS[cfg.peft.method](cfg, model)


def virtual_tokens(cfg: RunCfg) -> int:
    """Positions a method adds in front of every review: prompt and p-tuning as input embeddings, prefix tuning as
    past keys/values. Either way the review's position ids start after them."""
    section = {"prompt": cfg.peft.prompt, "ptuning": cfg.peft.ptuning, "prefix": cfg.peft.prefix}.get(cfg.peft.method)
    return section.num_virtual_tokens if section is not None else 0


def target_lists(cfg: RunCfg) -> list:
    """(key, module names) a method targets by name, for the preflight check that each matches a module."""
    m = cfg.peft.method
    if m in ("lora", "dora"):
        return [("peft.lora.target_modules", cfg.peft.lora.target_modules)]
    if m == "ia3":
        return [("peft.ia3.target_modules", cfg.peft.ia3.target_modules)]
    return []
