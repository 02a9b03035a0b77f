"""How a list of planned runs is executed: here, one after another (also under torchrun), or as Ray tasks.

The one seam for new ways of executing runs: each engine takes plans and returns (outcome, record) per plan.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import torch

from common import distributed, recipe, records
from common.errors import UserError
from common.execute import execute, record_failure
from common.progress import Progress

# CPUs a Ray task asks for on a machine without GPUs (and the torch threads it then uses).
CPUS_PER_TASK_ENV = "IMDB_PEFT_CPUS_PER_TASK"


def run(plans: list, run_fn, force: bool = False, engine: str = "local") -> list:
    """(outcome, record) per plan, in plan order; with several plans, a progress line after each run."""
    progress = Progress(len(plans)) if len(plans) > 1 else None
    if engine == "ray" and len(plans) > 1:
        return run_ray(plans, force, progress)
    return run_local(plans, run_fn, force, progress)


def run_local(plans: list, run_fn, force: bool, progress: Progress = None) -> list:
    """In order, in this process; an interruption stops the rest (they stay unrun, not failed)."""
    results = []
    for plan in plans:
        results.append(execute(plan, run_fn, force=force))
        if progress is not None:
            distributed.say(progress.update(results[-1][0]), flush=True)
        if results[-1][0] == "interrupted":
            results += [("not run", None)] * (len(plans) - len(results))
            break
    return results


# ------------------------------------------------------------------------------------------------ Ray


def _absolute(plan, cwd: str):
    """Paths in a plan resolved against the driver's folder: a worker may start elsewhere (on a cluster, the
    project and output.dir sit on a shared filesystem at the same path on every machine)."""
    cfg = plan.cfg
    out = str(Path(cwd, cfg.output.dir)) if not os.path.isabs(cfg.output.dir) else cfg.output.dir
    cache = str(Path(cwd, cfg.data.cache_dir)) if not os.path.isabs(cfg.data.cache_dir) else cfg.data.cache_dir
    cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, dir=out),
                              data=dataclasses.replace(cfg.data, cache_dir=cache))
    return dataclasses.replace(plan, cfg=cfg)


def _task(plan, force: bool, cwd: str, threads: int):
    """One run inside a Ray worker: the same execute() as here, writing through the same atomic files and locks."""
    os.chdir(cwd)  # relative paths of the config (tokenizer, data) mean what they meant to the driver
    if str(cwd) not in sys.path:
        sys.path.insert(0, str(cwd))
    if threads:
        torch.set_num_threads(threads)
    return execute(plan, recipe.run, force=force)


def _connect():
    try:
        import ray  # lazy: Ray is heavy (~1 s, a dashboard's worth of modules) and only --engine ray needs it
    except ImportError:  # pragma: no cover - pinned in requirements.txt
        raise UserError("--engine ray: the ray package is not installed (`make setup` installs it)") from None
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        kw = {} if address else {"num_cpus": int(os.environ.get("RAY_NUM_CPUS", os.cpu_count() or 1))}
        ray.init(address=address, include_dashboard=False, log_to_driver=True, **kw,
                 runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parent.parent),
                                           "TOKENIZERS_PARALLELISM": "false"}})
    return ray


def check_runtime_fits(plans: list, cluster_gpus: float) -> None:
    """Each run's runtime was decided once, at planning, on this machine, and a task runs with it as it is. A plan
    for CPU sent to a GPU worker would train there on the CPU, and one for CUDA sent to a CPU-only cluster could
    not run: both are refused here, before any task starts, naming what to change."""
    for plan in plans:
        device = plan.runtime.device
        if cluster_gpus >= 1 and device == "cpu":
            raise UserError(f"--engine ray: {plan.run_id} was planned for the CPU (this machine has no GPU), but the "
                            f"cluster gives each run a GPU. Start the command on a machine of the cluster with a GPU, "
                            f"so that planning decides for the GPU")
        if cluster_gpus < 1 and device != "cpu":
            raise UserError(f"--engine ray: {plan.run_id} was planned for {device}, but the cluster has no GPU")


def run_ray(plans: list, force: bool, progress: Progress = None) -> list:
    """Every run not yet completed becomes a Ray task with one GPU (or IMDB_PEFT_CPUS_PER_TASK CPUs where the
    cluster has no GPU). A task that fails or whose worker dies is recorded failed here and the rest go on."""
    if distributed.world_size() > 1:
        raise UserError("--engine ray: not under torchrun (NPROC): Ray gives each run its own GPU instead")
    results: list = [None] * len(plans)
    todo = []
    for i, plan in enumerate(plans):
        done = None if force else records.completed_record(plan.cfg.output.dir, plan.run_id)
        if done:
            print(f"[skip] {plan.run_id}: completed already (same config, data and packages)")
            results[i] = ("skipped", done)
        else:
            todo.append(i)
    progress = progress or Progress(len(plans))
    for _ in range(len(plans) - len(todo)):
        progress.update("skipped")
    if not todo:
        print(progress.line(), flush=True)
        return results
    ray = _connect()
    gpus = ray.cluster_resources().get("GPU", 0)
    check_runtime_fits([plans[i] for i in todo], gpus)
    cpus = int(os.environ.get(CPUS_PER_TASK_ENV, "1"))
    # No retries: a killed run is reported as failed, not silently started again.
    options = {"num_gpus": 1, "max_retries": 0} if gpus >= 1 else {"num_cpus": cpus, "max_retries": 0}
    remote = ray.remote(_task).options(**options)
    cwd = os.getcwd()
    pending = {remote.remote(_absolute(plans[i], cwd), force, cwd, 0 if gpus >= 1 else cpus): i for i in todo}
    where = os.environ.get("RAY_ADDRESS") or "a local Ray"
    print(f"[ray] {len(todo)} run(s) submitted to {where} ({'1 GPU' if gpus >= 1 else f'{cpus} CPU(s)'} each, "
          f"{int(ray.cluster_resources().get('GPU' if gpus >= 1 else 'CPU', 0))} in the cluster); "
          f"{len(plans) - len(todo)} skipped", flush=True)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ready[0])
            try:
                results[i] = ray.get(ready[0])
            except Exception as e:  # noqa: BLE001 - a crashed task or a killed worker: record it, go on
                msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                results[i] = ("failed", record_failure(plans[i], f"Ray task failed: {msg}"))
            print(progress.update(results[i][0]), flush=True)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)  # each task's run is recorded as interrupted by its own execute()
        for i in pending.values():
            results[i] = ("interrupted", None)
    return results
