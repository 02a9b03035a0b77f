"""A command's process (common/process.py): the collector held through start-up, given back after planning, frozen
at the exit, and every CLI ending that way."""
import subprocess
import sys

from conftest import ROOT


def _python(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_exit_process_keeps_a_normal_exit_but_freezes_the_collector(tmp_path):
    # Every CLI ends through exit_process: the exit code, atexit handlers (logging, Ray), and an unflushed last
    # write to stdout must survive it, and the collector must be frozen by the time shutdown starts.
    marker = tmp_path / "atexit.txt"
    r = _python("import atexit, gc, sys\n"
                "from common.process import exit_process\n"
                f"atexit.register(lambda: open({str(marker)!r}, 'w').write(str(gc.get_freeze_count())))\n"
                "sys.stdout.write('last words, no newline')\n"
                "exit_process(3)\n")
    assert r.returncode == 3, r.stderr
    assert r.stdout == "last words, no newline"
    assert int(marker.read_text()) > 0  # objects moved to the permanent generation before the atexit handlers ran


def test_the_collector_is_held_through_the_imports_and_back_on_after_planning_even_when_it_fails():
    # Importing an entry point holds the collector; cli.main gives it back after planning, also when the planning
    # fails (a bad config: exit code 2), or a test process importing the entry point would run without a collector.
    r = _python("import gc\n"
                "import part2_lora.train as t\n"
                "held = not gc.isenabled()\n"
                "rc = t.main(['--config', 'no/such/config.yaml'])\n"
                "print(held, rc, gc.isenabled(), gc.get_freeze_count() > 0)\n")
    assert r.stdout.split() == ["True", "2", "True", "True"], r.stderr


def test_release_collector_leaves_a_collector_it_did_not_hold_alone():
    r = _python("import gc\n"
                "from common import process\n"
                "process.release_collector()\n"
                "a = (gc.isenabled(), gc.get_freeze_count())\n"
                "gc.disable(); process.release_collector()\n"
                "print(a[0], a[1], gc.isenabled())\n")
    assert r.stdout.split() == ["True", "0", "False"], r.stderr  # someone else's gc.disable() is theirs to undo


def test_every_cli_entry_point_ends_through_exit_process():
    # a `sys.exit(main())` left in an entry point would bring back the 2 s shutdown (common/process.py)
    for path in ("part2_lora/train.py", "part3_prefix/train.py", "part4_peft_methods/train.py", "common/sweep.py",
                 "common/predict.py"):
        tail = (ROOT / path).read_text().split('if __name__ == "__main__":', 1)[1]
        assert tail.strip() in ("exit_process(main())", "process.exit_process(main())"), path
