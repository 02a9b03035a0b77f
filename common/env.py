"""Environment facts for the run record: package versions, git commit, device, date."""
from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import platform
import subprocess

from common.config import PROJECT_ROOT

PACKAGES = ("torch", "transformers", "peft", "datasets", "accelerate", "scikit-learn", "numpy")


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


@functools.lru_cache(maxsize=None)
def git_state() -> dict:
    """Read once per process, at planning time: the commit of the code this process loaded, even if the
    checkout moves on while a long run trains."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD") or None
    # Dirty = tracked code changed; results/ is excluded since every run rewrites it.
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")) \
        if commit else None
    return {"git_commit": commit, "git_dirty": dirty}


def device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name()
    return f"cpu ({platform.processor() or platform.machine()})"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def collect_env(device: str) -> dict:
    return {"device": device_name(device), "device_type": device, **package_versions(), **git_state(),
            "platform": platform.platform(), "date": now_iso()}
