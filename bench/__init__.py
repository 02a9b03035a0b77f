"""Benchmarks: scripts that print ratios against a baseline run alongside, on the same machine (never timed tests)."""
import shlex
import sys
from pathlib import Path

from common.records import write_atomic, write_json


def write_report(out_dir: str, stamp: str, title: str, module: str, argv, env: dict, text: str,
                 payload: dict) -> Path:
    """<stamp>.md (the table under a header: command, date, packages, commit) and <stamp>.json beside it."""
    # shlex: an argument with spaces or quotes (--variant "fast dropout, torch's bits") stays one argument
    command = shlex.join([Path(sys.executable).name, "-m", module, *(argv if argv is not None else sys.argv[1:])])
    header = f"# {title} {stamp}\n\nCommand: `{command}`\n\nDate: {env['date']}; packages: torch {env['torch']}, " \
             f"transformers {env['transformers']}, peft {env['peft']}; git {str(env['git_commit'])[:12]}" \
             f"{' (dirty)' if env['git_dirty'] else ''}.\n\n"
    out = Path(out_dir)
    write_atomic(out / f"{stamp}.md", (header + text + "\n").encode())
    write_json(out / f"{stamp}.json", {"command": command, "env": env, **payload})
    return out / f"{stamp}.md"
