"""A command's process: the garbage collector kept out of its start-up and its shutdown, where it only costs time."""
from __future__ import annotations

import gc
import sys

# Why (2-core AMD EPYC Zen 3, 2026-12-02, 4-step quick-profile runs): importing torch, transformers and peft and
# planning the runs create ~530k objects the collector tracks, nearly all of which live until the exit. While they
# are made, the collector's full passes over them (10, growing to ~0.5 s each) took 2.6 s of start-up and planning
# and found almost nothing to free (9-154 objects a pass); at the exit, the interpreter's own passes took another
# 2.4-2.6 s. Six alternating pairs (study/bench/2026-12-02T0110-process-ab.md): start-up + planning 8.5 vs 10.8 s
# (full FT) and 9.2 vs 10.1 s (LoRA), summary + exit 2.1-2.2 vs 4.1-4.2 s, training unchanged.
_held = False


def hold_collector() -> None:
    """No collection passes from here until release_collector(): called by an entry point before its imports."""
    global _held
    if gc.isenabled():
        gc.disable()
        _held = True


def release_collector() -> None:
    """After the planning (common/cli.py): freeze every object alive now into the collector's permanent generation
    and turn the collector back on, so training's garbage is collected as before, without passes over the libraries,
    the config and the data. Does nothing unless hold_collector() turned the collector off."""
    global _held
    if _held:
        _held = False
        gc.freeze()
        gc.enable()


def exit_process(code: int):
    """End a command's process with exit code `code`: sys.exit after gc.freeze(), so that the interpreter's shutdown
    runs no collection passes over objects that die with the process anyway."""
    # gc.disable() would not help: the shutdown collects regardless; frozen objects it skips. The rest of a normal
    # exit still happens: atexit handlers (logging, Ray), joins of non-daemon threads, flushes of stdout and stderr.
    # What is left unfinalised is only cyclic garbage, whose memory the OS takes back; every file the project writes
    # is closed before this.
    gc.freeze()
    sys.exit(code)
