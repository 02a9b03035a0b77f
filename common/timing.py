"""Where a command's time goes: named phases of a run (seconds), and how long the process ran before a phase."""
from __future__ import annotations

import contextlib
import os
import time


@contextlib.contextmanager
def phase(store: dict, name: str):
    """Add the wall time of the block to store[name] (seconds, rounded to ms)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        store[name] = round(store.get(name, 0.0) + time.perf_counter() - t0, 3)


def process_age_s():
    """Seconds since this process started (interpreter start-up and imports included); None off Linux."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: start time, clock ticks since boot
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return round(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 3)
    except (OSError, ValueError, IndexError):
        return None
