"""Plans: every run of a command checked (config, data, model, budget) and named before anything trains."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from common import distributed, records
from common.config import explain, load_config, part_configs, profile_methods
from common.data import Splits, load_splits
from common.devices import Runtime, check_cpu_budget, resolve_runtime
from common.env import git_state, package_versions
from common.errors import UserError
from common.models import build_model, count_parameters, load_model_config, parameter_table
from common.picks import apply_pick
from common.schema import RunCfg, expand_seeds


@dataclass
class Plan:
    """Everything known about a run before it starts; building one writes nothing."""

    cfg: RunCfg
    splits: Splits
    model_config: object
    params: dict
    identity: str
    runtime: Runtime  # every auto setting, decided here once; lower layers read it
    run_id: str
    lr_source: str
    table: str
    source: str  # the config file it came from
    explained: dict = dataclasses.field(default_factory=dict)  # values off the schema default -> value and source
    evaluate_test: bool = True
    phases: dict = dataclasses.field(default_factory=dict)  # the command's start-up and planning seconds


def plan_runs(part: str, args, output_dir_override: str = None) -> list:
    """Config -> data checks -> model checks -> identity, for every config and seed, before anything trains."""
    git_state()  # pin the commit now: the code in memory is this commit's, whatever happens to the checkout later
    cfgs = []
    args.config = args.config or part_configs(part)  # none named: every config of the part
    for path in args.config:
        sources: dict = {}
        cfgs.append((path, load_config(path, args.profile, tuple(args.set), part=part, sources=sources), sources))
    only = profile_methods(args.profile)
    if only is not None:
        skipped = [path for path, cfg, _ in cfgs if cfg.peft.method not in only]
        cfgs = [c for c in cfgs if c[1].peft.method in only]
        if skipped:
            distributed.say(f"[plan] profile {args.profile} runs only {', '.join(only)} (its only_methods): "
                            f"not {', '.join(skipped)}")
        if not cfgs:
            raise UserError(f"--profile {args.profile}: only_methods: {only} names none of the configs given "
                            f"({', '.join(args.config)})")
    versions = package_versions()
    plans, split_cache = [], {}
    for path, base, sources in cfgs:
        lr_origin = sources.get("train.learning_rate", "schema default")
        for cfg in expand_seeds(base):
            if output_dir_override:
                cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, dir=output_dir_override))
            if cfg.data not in split_cache:
                split_cache[cfg.data] = load_splits(cfg.data)
            splits = split_cache[cfg.data]
            distributed.per_device_batch(cfg.train.batch_size)  # NPROC must divide the global batch: refuse now
            model_config = load_model_config(cfg)
            runtime = resolve_runtime(cfg, model_config.model_type, strict=not getattr(args, "dry_run", False))
            cfg, lr_source = apply_pick(cfg, splits.fingerprints, runtime.identity(), lr_origin)
            skeleton = build_model(cfg, model_config, meta=True, runtime=runtime)  # shapes only: checks compatibility
            identity = records.run_identity(cfg.to_dict(), splits.fingerprints, versions, runtime.identity())
            explained = explain(cfg, sources)
            explained["train.learning_rate"] = {"value": cfg.train.learning_rate, "source": lr_source}
            for key, value in dataclasses.asdict(runtime).items():  # what the auto settings became here
                explained[f"runtime.{key}"] = {"value": value, "source": "auto (resolved on this machine)"}
            plans.append(Plan(cfg, splits, model_config, count_parameters(skeleton), identity, runtime,
                              records.run_id_for(part, cfg.peft.method, cfg.train.seed, identity), lr_source,
                              parameter_table(skeleton), path, explained=explained))
    return plans


def print_dry_run(plans: list) -> int:
    for p in plans:
        print(f"# {p.run_id}: {p.cfg.peft.method} on {p.cfg.model.name_or_path} ({p.cfg.model.init} init), "
              f"profile {p.cfg.profile}, lr {p.cfg.train.learning_rate} ({p.lr_source})")
        print(f"# data: {len(p.splits.train.text)} train / {len(p.splits.val.text)} val / "
              f"{len(p.splits.test.text)} test reviews from {p.splits.files['train']}")
        print("# values that differ from the schema's defaults (common/schema.py), and where each came from:")
        for key, e in p.explained.items():
            print(f"#   {key} = {e['value']!r}  <- {e['source']}")
        print(p.table)
        print(json.dumps({"run_id": p.run_id, "trainable_params": p.params["trainable"],
                          "total_params": p.params["total"], "trainable_pct": p.params["trainable_pct"]}))
    return 0


def check_budget(plan: Plan) -> None:
    check_cpu_budget(plan.cfg, plan.runtime.device, len(plan.splits.train.text), plan.params["total"],
                     plan.cfg.data.max_length)
