"""Result files under failure: a write that fails or is killed half-way leaves the previous file whole and, once the
next write of that file is done, no temporary file behind."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from common import records
from common.report import write_summary

from conftest import ROOT, write_run


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock"))


def _fail_while_writing(monkeypatch):
    """Every write dies after half its bytes, as a full disk or an exception inside it would."""
    real_fdopen = os.fdopen

    class HalfFile:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: HalfFile(real_fdopen(fd, mode, *a, **k)))


def test_a_failing_record_write_keeps_the_previous_record(tmp_path, monkeypatch):
    path = tmp_path / "runs" / "r.json"
    records.write_json(path, {"status": "completed", "accuracy": 0.9})
    before = path.read_bytes()
    _fail_while_writing(monkeypatch)
    with pytest.raises(OSError, match="No space"):
        records.write_json(path, {"status": "completed", "accuracy": 0.1, "pad": "x" * 10_000})
    assert path.read_bytes() == before and _leftovers(path.parent) == []


def test_a_failing_csv_write_keeps_the_previous_csv(tmp_path, monkeypatch):
    from common.table import load_table, write_part_csvs

    out = tmp_path / "results"
    write_run(out, {"run_id": "a", "part": "part1", "method": "full", "seed": 0, "accuracy": 0.5})
    write_part_csvs(out, load_table(out))
    before = (out / "part1.csv").read_bytes()
    write_run(out, {"run_id": "b", "part": "part1", "method": "full", "seed": 1, "accuracy": 0.5})
    _fail_while_writing(monkeypatch)
    with pytest.raises(OSError):
        write_part_csvs(out, load_table(out))
    assert (out / "part1.csv").read_bytes() == before and _leftovers(out) == []


def test_a_failing_summary_keeps_the_previous_summary(tmp_path, monkeypatch):
    out = tmp_path / "results"
    label = np.arange(40) % 2
    records.write_predictions(str(out), "part1-full-s0-x", {"row": np.arange(40), "label": label, "pred": label,
                                                            "prob_pos": label.astype(float)})
    write_run(out, {"run_id": "part1-full-s0-x", "part": "part1", "method": "full", "model": "m", "profile": "p",
                    "seed": 0, "learning_rate": 1e-3, "accuracy": 1.0, "loss": 0.1, "device": "cpu",
                    "precision": "fp32"})
    before = write_summary(str(out), plots=False).read_bytes()
    _fail_while_writing(monkeypatch)
    with pytest.raises(OSError):
        write_summary(str(out), plots=False)
    assert (out / "summary.md").read_bytes() == before and _leftovers(out) == []


def test_a_writer_killed_mid_write_leaves_the_old_file_and_the_next_write_clears_its_temporary(tmp_path):
    path = tmp_path / "runs" / "r.json"
    records.write_json(path, {"status": "completed", "accuracy": 0.9})
    before = path.read_bytes()
    # A process that SIGKILLs itself between writing the temporary file and renaming it into place.
    code = ("import os, signal, sys; sys.path.insert(0, sys.argv[2]); from common import records; "
            "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL); "
            "records.write_json(__import__('pathlib').Path(sys.argv[1]), {'status': 'half'})")
    r = subprocess.run([sys.executable, "-c", code, str(path), str(ROOT)], capture_output=True)
    assert r.returncode == -signal.SIGKILL
    assert path.read_bytes() == before and json.loads(before)["accuracy"] == 0.9
    (orphan,) = _leftovers(path.parent)  # the killed writer's temporary file, named with its pid
    assert orphan.startswith(".r.json.") and orphan.endswith(".tmp")
    records.write_json(path, {"status": "completed", "accuracy": 0.8})
    assert json.loads(path.read_text())["accuracy"] == 0.8 and _leftovers(path.parent) == []


def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    path = tmp_path / "r.json"
    live = tmp_path / f".r.json.{os.getpid()}.abc.tmp"  # this process is alive: its file may be mid-write
    live.write_text("{")
    records.write_json(path, {"a": 1})
    assert live.exists()
