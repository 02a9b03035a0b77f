"""Run configuration: YAML + profile + --set merged onto the schema's defaults, validated once, all errors together."""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import sys
import typing
from pathlib import Path
from typing import Any, Optional

import yaml

from common import methods
from common.errors import UserError
from common.schema import (
    DEVICES,
    DROPOUT_KERNELS,
    METHODS,
    PARTS,
    PRECISIONS,
    PROJECT_ROOT,
    REPORT_TO_PACKAGES,
    PeftCfg,
    RunCfg,
    flatten,
    report_to_names,
)

PROFILE_DIR = PROJECT_ROOT / "configs" / "profiles"


# ----------------------------------------------------------------------------------------------- loading


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key, line: int):
        super().__init__(f"key {key!r} given twice in one mapping (line {line})")
        self.key, self.line = key, line


class _StrictLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error (safe_load keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, what: str) -> dict:
    """Parse one YAML mapping; a missing file, a syntax error, a duplicate key or a non-mapping is a UserError
    naming the file."""
    if not path.is_file():
        raise UserError(f"{path}: {what} file not found")
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 - a SafeLoader
    except _DuplicateKey as e:
        raise UserError(f"{path}:{e.line}: {e.key}: key given twice in the same mapping; YAML would silently "
                        f"keep the last value. Keep one.") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise UserError(f"{path}: top level must be a mapping of sections, got {type(doc).__name__}")
    return doc


def parse_set(item: str) -> tuple[str, Any]:
    """'train.epochs=1' -> ('train.epochs', 1); the value is read as YAML so lists and numbers work."""
    if "=" not in item:
        raise UserError(f"--set {item}: expected section.key=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _merge(base: dict, over: dict, origin: str, sources: dict, prefix: str = "") -> dict:
    out = dict(base)
    for k, v in over.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "config_overrides":
            sources.setdefault(key, origin)
            out[k] = _merge(out[k] if isinstance(out.get(k), dict) else {}, v, origin, sources, key + ".")
        else:
            out[k] = v
            sources[key] = origin
    return out


def _shown(path: Path) -> str:
    """A file as the user would name it: relative to the project where it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _replaced(doc: dict, layer: dict, user_file: str, sources: dict, prefix: str = "") -> list:
    """(key, old value, new value) for every value of the user's file that `layer` would replace by another."""
    out = []
    for k, v in layer.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "config_overrides" and isinstance(doc.get(k), dict):
            out += _replaced(doc[k], v, user_file, sources, key + ".")
        elif k in doc and sources.get(key) == user_file and doc[k] != v:
            out.append((key, doc[k], v))
    return out


def _nest(dotted: str, value: Any) -> dict:
    out: Any = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def profile_path(profile: str, beside: Optional[Path] = None) -> Optional[Path]:
    """A profile's file: a name in configs/profiles/, or a YAML path (relative to `beside`, the folder of the profile
    that extends it, where the file is there; else to the working folder)."""
    if profile in ("", "default"):
        return None
    p = Path(profile)
    if p.suffix not in (".yaml", ".yml"):
        return PROFILE_DIR / f"{profile}.yaml"
    if beside is not None and not p.is_absolute() and (beside / p).is_file():
        return beside / p
    return p


def profile_chain(profile: str) -> list:
    """The profile's YAML files, the one it `extends` first (a profile holds only what differs from its parent)."""
    chain: list = []
    path = profile_path(profile)
    while path is not None:
        if path in chain:
            raise UserError(f"{path}: extends: profiles extend each other in a circle "
                            f"({' -> '.join(str(p) for p in reversed(chain + [path]))})")
        chain.append(path)
        parent = read_yaml(path, f"profile '{profile}'").get("extends")
        if parent is not None and not isinstance(parent, str):
            raise UserError(f"{path}: extends: must name a profile, got {parent!r}")
        nxt = profile_path(parent, path.parent) if parent else None
        if nxt is not None and not nxt.is_file():
            raise UserError(f"{path}: extends: no profile '{parent}' ({nxt} not found); profiles: "
                            f"{', '.join(sorted(p.stem for p in PROFILE_DIR.glob('*.yaml')))}, or a YAML path")
        path = nxt
    return list(reversed(chain))


def profile_methods(profile: str) -> Optional[list]:
    """The methods a profile runs (its `only_methods`, the nearest profile in the chain that sets it wins), or None
    for every method the command names: a profile made for a few methods cannot start hours of the others."""
    only, where = None, None
    for ppath in profile_chain(profile):
        doc = read_yaml(ppath, f"profile '{profile}'")
        if "only_methods" in doc:
            only, where = doc["only_methods"], ppath
    if only is None:
        return None
    if not isinstance(only, list) or not only or not all(isinstance(m, str) for m in only):
        raise UserError(f"{where}: only_methods: must be a non-empty list of method names, got {only!r}")
    unknown = sorted(set(only) - set(METHODS))
    if unknown:
        raise UserError(f"{where}: only_methods: unknown method(s) {unknown}; known: {list(METHODS)}")
    return list(only)


METHOD_DEFAULTS = "common/methods.py (the method's default grid)"


def part_configs(part: str) -> list:
    """A part's configs (configs/<part>_*.yaml) in the registry's order, full fine-tuning first: a part or sweep
    stopped halfway has the reference the others are compared with."""
    order = {m: i for i, m in enumerate(METHODS)}

    def rank(path: Path):
        peft = read_yaml(path, "config").get("peft")
        method = peft.get("method", "full") if isinstance(peft, dict) else "full"
        return order.get(method, len(order)), path.name

    paths = sorted((PROJECT_ROOT / "configs").glob(f"{part}_*.yaml"), key=rank)
    return [str(p.relative_to(PROJECT_ROOT)) for p in paths]


def method_defaults(doc: dict) -> dict:
    """What the registry gives the method a config file names, beneath the file itself: its rate grid."""
    peft = doc.get("peft")
    method = peft.get("method", PeftCfg.method) if isinstance(peft, dict) else PeftCfg.method
    entry = methods.REGISTRY.get(method) if isinstance(method, str) else None
    return {"train": {"lr_grid": list(entry.grid)}} if entry and entry.grid else {}


def load_config(path: str, profile: str = "default", sets: tuple = (), part: Optional[str] = None,
                sources: Optional[dict] = None) -> RunCfg:
    """Dataclass defaults <- config YAML <- profile (common, then its per-method block) <- --set, validated.
    `sources`, when given, is filled with where each value set by a file or flag came from (dotted key -> origin).
    A profile that replaces a value the config file set says so on stderr, one line per key."""
    sources = {} if sources is None else sources
    cfg_path = Path(path)
    own = read_yaml(cfg_path, "config")
    doc = _merge(method_defaults(own), own, str(cfg_path), sources)
    if "train.lr_grid" not in sources and isinstance(doc.get("train"), dict) and "lr_grid" in doc["train"]:
        sources["train.lr_grid"] = METHOD_DEFAULTS
    replaced = []
    for ppath in profile_chain(profile):
        prof = read_yaml(ppath, f"profile '{profile}'")
        shown = _shown(ppath)
        prof.pop("extends", None)
        prof.pop("only_methods", None)  # which configs run at all: profile_methods, read at planning
        per_method = prof.pop("methods", {}) or {}
        replaced += [(k, old, new, shown) for k, old, new in _replaced(doc, prof, str(cfg_path), sources)]
        doc = _merge(doc, prof, shown, sources)
        method = (doc.get("peft") or {}).get("method", PeftCfg.method) if isinstance(doc.get("peft"), dict) else None
        if not isinstance(per_method, dict):
            raise UserError(f"{ppath}: methods: must map a method name to overrides")
        unknown = sorted(set(per_method) - set(METHODS))
        if unknown:
            raise UserError(f"{ppath}: methods: unknown method(s) {unknown}; known: {list(METHODS)}")
        if method in per_method and per_method[method]:
            origin = f"{shown} (methods.{method})"
            replaced += [(k, old, new, origin) for k, old, new in
                         _replaced(doc, per_method[method], str(cfg_path), sources)]
            doc = _merge(doc, per_method[method], origin, sources)
    for key, old, new, origin in replaced:  # the profile wins; said once, so an edit that does nothing is seen
        print(f"[config] {key}: {old!r} from {cfg_path} is replaced by {new!r} from {origin} "
              f"(--set {key}=... wins over both)", file=sys.stderr)
    for item in sets:
        key, value = parse_set(item)
        doc = _merge(doc, _nest(key, value), f"--set {key}", sources)
    doc["profile"] = profile or "default"
    sources.setdefault("profile", "--profile")
    errors: list = []
    cfg = _build(RunCfg, doc, "", errors, sources, str(cfg_path))
    if cfg is not None:  # fields with type errors kept their defaults, so range checks still apply to the rest
        errors += validate(cfg, sources, str(cfg_path))
    if part is not None and not errors and cfg.part != part:
        errors.append(f"{sources.get('part', cfg_path)}: part: this recipe runs '{part}', the config says '{cfg.part}'")
    if errors:
        raise UserError(errors)
    return cfg


# ----------------------------------------------------------------------------------------------- checking


def _type_ok(value: Any, hint: Any) -> tuple[bool, Any]:
    """(ok, coerced value). YAML 1.1 reads '5e-4' as a string: numeric strings are accepted for floats."""
    origin = typing.get_origin(hint)
    if origin is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return True, None
        return _type_ok(value, args[0])
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, (int, float)):
            return math.isfinite(value), float(value)
        if isinstance(value, str):
            try:
                f = float(value)
                return math.isfinite(f), f
            except ValueError:
                return False, value
        return False, value
    if hint is str:
        return isinstance(value, str), value
    if hint is list or origin is list:
        return isinstance(value, list), value
    if hint is dict or origin is dict:
        return isinstance(value, dict), value
    return True, value


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return f"{_type_name(args[0])} or null"
    return getattr(hint, "__name__", str(hint))


def _build(cls, data: Any, prefix: str, errors: list, sources: dict, default_src: str):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    section = prefix.rstrip(".") or "top level"
    if not isinstance(data, dict):
        errors.append(f"{sources.get(prefix.rstrip('.'), default_src)}: {section}: must be a mapping, got {data!r}")
        return None
    for k in data:
        if k not in fields:
            src = sources.get(f"{prefix}{k}", default_src)
            errors.append(f"{src}: {prefix}{k}: unknown key; {section} has: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            continue
        key, value, hint = f"{prefix}{name}", data[name], hints[name]
        if dataclasses.is_dataclass(hint):
            sub = _build(hint, value, key + ".", errors, sources, default_src)
            if sub is not None:
                kwargs[name] = sub
            continue
        ok, coerced = _type_ok(value, hint)
        if not ok:
            errors.append(f"{sources.get(key, default_src)}: {key}: expected {_type_name(hint)}, got {value!r}")
        else:
            kwargs[name] = coerced
    try:
        return cls(**kwargs)
    except TypeError as e:  # pragma: no cover - all fields have defaults
        errors.append(f"{default_src}: {section}: {e}")
        return None


def load_config_dict(doc: dict, source: str) -> RunCfg:
    """A resolved config as a run record holds it, checked like a YAML (predictions rebuild the run's model)."""
    train = doc.get("train")
    if isinstance(train, dict) and train.get("seeds") == []:  # records from before train.seeds: null meant "one run"
        doc = {**doc, "train": {**train, "seeds": None}}
    errors: list = []
    cfg = _build(RunCfg, doc, "", errors, {}, source)
    if cfg is not None:
        errors += validate(cfg, {}, source, check_paths=False)
    if errors:
        raise UserError(errors)
    return cfg


def validate(cfg: RunCfg, sources: dict, default_src: str, check_paths: bool = True) -> list:
    """Range and choice checks; each message names the file (or --set) and the key."""
    errors = []

    def bad(key: str, msg: str):
        errors.append(f"{sources.get(key, default_src)}: {key}: {msg}")

    def choice(key: str, value: str, allowed):
        if value not in allowed:
            bad(key, f"must be one of {list(allowed)}, got {value!r}")

    def at_least(key: str, value, low):
        if value is not None and value < low:
            bad(key, f"must be >= {low}, got {value!r}")

    if not cfg.part:
        bad("part", "missing: name the part this config belongs to (part1, part2 or part3)")
    else:
        choice("part", cfg.part, PARTS)
    if not cfg.model.name_or_path:
        bad("model.name_or_path", "must not be empty")
    choice("model.init", cfg.model.init, ("pretrained", "random"))
    choice("model.attn_implementation", cfg.model.attn_implementation, ("auto", "sdpa", "eager"))
    choice("model.last_layer", cfg.model.last_layer, ("auto", "full", "cls"))
    if not cfg.data.dir:
        bad("data.dir", "must not be empty")
    at_least("data.max_length", cfg.data.max_length, 8)
    at_least("data.train_samples", cfg.data.train_samples, 2)
    at_least("data.test_samples", cfg.data.test_samples, 2)
    at_least("data.test_drawn_as_train_samples", cfg.data.test_drawn_as_train_samples, 2)
    at_least("data.val_samples", cfg.data.val_samples, 0)
    choice("peft.method", cfg.peft.method, METHODS)
    for section in methods.sections():  # each method's own settings check themselves (common/methods.py)
        for key, msg in getattr(cfg.peft, section).problems():
            bad(f"peft.{section}.{key}", msg)
    t = cfg.train
    at_least("train.epochs", t.epochs, 1)
    at_least("train.batch_size", t.batch_size, 1)
    at_least("train.eval_batch_size", t.eval_batch_size, 1)
    if not t.learning_rate > 0:
        bad("train.learning_rate", f"must be > 0, got {t.learning_rate!r}")
    if t.learning_rate > 1:
        bad("train.learning_rate", f"must be <= 1, got {t.learning_rate!r}")
    for i, lr in enumerate(t.lr_grid):
        ok, v = _type_ok(lr, float)
        if not ok or not 0 < v <= 1:
            bad("train.lr_grid", f"item {i} must be a number in (0, 1], got {lr!r}")
    at_least("train.lr_grid_edge_steps", t.lr_grid_edge_steps, 0)
    if t.seeds is not None and not t.seeds:
        bad("train.seeds", "an empty list runs nothing: give at least one seed (e.g. [0, 1, 2]), or leave the key "
                           "out to run train.seed alone")
    for i, s in enumerate(t.seeds or []):
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            bad("train.seeds", f"item {i} must be an integer >= 0, got {s!r}")
    at_least("train.seed", t.seed, 0)
    at_least("train.weight_decay", t.weight_decay, 0.0)
    if not 0.0 <= t.warmup_ratio < 1.0:
        bad("train.warmup_ratio", f"must be in [0, 1), got {t.warmup_ratio!r}")
    choice("train.lr_scheduler", t.lr_scheduler, ("linear", "cosine", "constant", "constant_with_warmup"))
    choice("train.precision", t.precision, PRECISIONS)
    choice("train.device", t.device, DEVICES)
    choice("train.padding", t.padding, ("dynamic", "max_length"))
    choice("train.optim", t.optim, ("auto", "adamw_torch", "adamw_torch_fused"))
    choice("train.allocator", t.allocator, ("auto", "reuse", "system"))
    choice("train.dropout_kernel", t.dropout_kernel, DROPOUT_KERNELS)
    at_least("train.dataloader_workers", t.dataloader_workers, 0)
    at_least("train.max_steps", t.max_steps, 1)
    at_least("train.evals_per_epoch", t.evals_per_epoch, 0)
    at_least("train.logging_steps", t.logging_steps, 1)
    for problem in report_to_problems(cfg):
        bad("train.report_to", problem)
    choice("output.save_model", cfg.output.save_model, ("auto", "none", "full"))
    if not cfg.output.dir:
        bad("output.dir", "must not be empty")
    elif check_paths:
        problem = output_dir_problem(cfg.output.dir)
        if problem:
            bad("output.dir", problem)
    return errors


def report_to_problems(cfg: RunCfg) -> list:
    """Unknown integrations, and known ones whose package is missing here: refused before training (the Trainer
    would only fail once the model is built, or warn and log nothing)."""
    names = report_to_names(cfg)
    if "none" in names:
        return [f"'none' cannot be combined with other integrations, got {cfg.train.report_to!r}"]
    problems = []
    for name in names:
        package = REPORT_TO_PACKAGES.get(name)
        if package is None:
            problems.append(f"unknown integration {name!r}; known: none, {', '.join(REPORT_TO_PACKAGES)}")
        elif importlib.util.find_spec(package) is None:
            problems.append(f"{name} needs the Python package '{package}', which is not installed here "
                            f"(`.venv/bin/pip install {package}`; tensorboard comes with `make setup`)")
    return problems


def output_dir_problem(path: str) -> Optional[str]:
    """Why results could not be written under `path` (checked before training, creating nothing), or None."""
    p = Path(path).expanduser()
    p = p if p.is_absolute() else Path.cwd() / p
    probe = p
    while not probe.exists():  # the nearest existing ancestor decides whether the folders can be created
        if probe.parent == probe:
            return f"{path}: no existing parent folder"
        probe = probe.parent
    if not probe.is_dir():
        return f"{path}: {probe} is a file, not a folder, so results cannot be written there"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{path}: cannot write in {probe} (permission denied)"
    return None


def explain(cfg: RunCfg, sources: dict) -> dict:
    """Every value that differs from the schema's default -> {'value', 'source'}: the file (a profile's methods
    block named), or the --set flag, that gave it."""
    default = flatten(RunCfg().to_dict())
    out = {}
    for key, value in flatten(cfg.to_dict()).items():
        if key in default and default[key] == value:
            continue
        parts = key.split(".")
        if key == "train.seed" and "train.seeds" in sources:  # one run of a train.seeds list
            parts = ["train", "seeds"]
        origin = next((sources[".".join(parts[:i])] for i in range(len(parts), 0, -1)
                       if ".".join(parts[:i]) in sources), "schema default")
        out[key] = {"value": value, "source": origin}
    return out
