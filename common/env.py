"""Environment facts: package versions, git commit, device, date for the run record; whether the hub is reachable."""
from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import os
import platform
import re
import socket
import subprocess
import sys
from urllib.parse import urlparse

from common.schema import PROJECT_ROOT

PACKAGES = ("torch", "transformers", "peft", "adapters", "datasets", "accelerate", "scikit-learn", "numpy")


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
    # Dirty = tracked code changed; the committed study (study/) is excluded since `make study` rewrites it.
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)study")) \
        if commit else None
    return {"git_commit": commit, "git_dirty": dirty}


def device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name()
    return f"cpu ({cpu_model()})"


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    """The CPU's model name and whether it runs bf16 natively: speed figures are only comparable on the same one
    (CPUs with and without AVX512-BF16/AMX train at different precisions and speeds)."""
    name, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not name:
                    name = " ".join(value.split())
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    isa = "AMX" if "amx_bf16" in flags else ("AVX512-BF16" if "avx512_bf16" in flags else
                                              ("AVX2" if "avx2" in flags else ""))
    name = name or platform.processor() or platform.machine()
    return f"{name}, {isa}" if isa else name


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def collect_env(device: str) -> dict:
    return {"device": device_name(device), "device_type": device, **package_versions(), **git_state(),
            "platform": platform.platform(), "date": now_iso()}


def hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def portable_path(path: str) -> str:
    """A path as it reads on any machine with the same checkout: relative to the project where it lies inside it or
    beside it (../shared/...), absolute otherwise."""
    p = os.path.abspath(str(path))
    rel = os.path.relpath(p, PROJECT_ROOT)
    return rel if not rel.startswith(os.pardir + os.sep + os.pardir) else p


_MODULE = re.compile(r"^(?P<mod>(?:common|bench|part\w+)(?:/\w+)*)\.py$")


def command_line(argv: list = None) -> str:
    """The command as a user would type it in the project folder: `python -m module ...` for a module of the
    project, paths inside the project (or beside it) relative."""
    argv = list(sys.argv if argv is None else argv)
    first = portable_path(argv[0]) if argv and argv[0].endswith(".py") else (argv[0] if argv else "")
    m = _MODULE.match(first)
    head = ["python", "-m", m["mod"].replace("/", ".").removesuffix(".__main__")] if m else ["python", first]
    rest = [portable_path(a) if os.path.isabs(a) and os.path.exists(a) else
            re.sub(r"=(/\S+)", lambda g: "=" + (portable_path(g[1]) if os.path.exists(g[1]) else g[1]), a)
            for a in argv[1:]]
    return " ".join(head + rest)
