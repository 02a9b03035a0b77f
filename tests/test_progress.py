"""Progress of a grid: counts and the time-left estimate on a simulated grid with a fake clock; the local engine
prints one line per run."""
from common import engines
from common.progress import Progress


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_counts_and_estimate_on_a_simulated_grid():
    clock = Clock()
    p = Progress(6, clock=clock)
    assert p.update("skipped").startswith("[progress] 1/6 runs done (1 skipped, 0 failed)")
    assert "time left unknown" in p.line()  # a skip says nothing about how long a run takes
    clock.t += 100
    p.update("completed")  # one run trained in 100 s; 4 to go -> 400 s
    assert p.seconds_left() == 400
    clock.t += 300
    line = p.update("failed")  # 2 trained in 400 s: 200 s each, 3 to go -> 600 s = 10 min
    assert p.seconds_left() == 600 and "3/6 runs done (1 skipped, 1 failed)" in line and "about 10 min left" in line
    assert Progress(1).update("reused").endswith("all done")  # a grid of reused runs ends done, not "unknown"
    p.update("reused")  # another part's run: counted, costs nothing
    assert p.seconds_left() == 400 and "1 reused" in p.line()
    clock.t += 200
    p.update("completed")
    clock.t += 200
    line = p.update("completed")
    assert line.startswith("[progress] 6/6 runs done (1 skipped, 1 failed, 1 reused)") and "all done" in line
    assert "13 min so far" in line  # 800 s of wall time since the grid started


def test_the_local_engine_prints_a_progress_line_after_each_run(monkeypatch, capsys):
    outcomes = iter(["skipped", "completed", "failed"])
    monkeypatch.setattr(engines, "execute", lambda plan, run_fn, force=False: (next(outcomes), None))
    results = engines.run(["a", "b", "c"], run_fn=None)
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("[progress]")]
    assert [r[0] for r in results] == ["skipped", "completed", "failed"]
    assert [x.split(" done")[0] for x in lines] == ["[progress] 1/3 runs", "[progress] 2/3 runs", "[progress] 3/3 runs"]
    assert "(1 skipped, 1 failed)" in lines[-1]
    monkeypatch.setattr(engines, "execute", lambda plan, run_fn, force=False: ("completed", None))
    engines.run(["only"], run_fn=None)  # one run: no grid, no progress line
    assert "[progress]" not in capsys.readouterr().out
