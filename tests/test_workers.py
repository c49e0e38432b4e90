"""Bounded by default: the process and thread executors run at most their workers at once."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import pytest

import eventor as evr
from eventor.options import default_workers
from tests.conftest import fan_out, max_overlap


def children() -> set[int]:
    """This process's child processes, whichever of its threads forked them."""
    pids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # the thread ended meanwhile
            pids.update(int(p) for p in (task / "children").read_text().split())
    return pids


class ChildCounter:
    """
    Samples the children of this process while a run goes on; `peak` is the most seen at
    once, leaving out those that were there before (other tests' processes).
    """

    def __init__(self) -> None:
        self.peak = 0
        self._before = children()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, len(children() - self._before))
            time.sleep(0.002)

    def __enter__(self) -> ChildCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def engine_overlap(ev: evr.Eventor) -> int:
    """The most tasks the store shows active at once (from started_at to ended_at)."""
    edges = []
    for task in ev.store.tasks(ev.run_id):
        edges += [(task["started_at"], 1), (task["ended_at"], -1)]
    level = peak = 0
    for _, delta in sorted(edges, key=lambda e: (e[0], e[1])):
        level += delta
        peak = max(peak, level)
    return peak


def test_the_default_is_the_cpus_plus_four_and_at_most_32():
    cpus = len(os.sched_getaffinity(0))
    assert default_workers() == min(32, cpus + 4)
    options = evr.load_config({}).engine_options()
    assert options.process_workers == default_workers()
    assert options.thread_workers == 32  # threads cost little, and thread steps mostly wait


def test_max_concurrent_sets_the_workers_unless_they_are_given():
    assert evr.load_config({"max_concurrent": 50}).engine_options().process_workers == 50
    options = evr.load_config({"max_concurrent": 50, "process_workers": 3,
                               "thread_workers": 4}).engine_options()
    assert (options.process_workers, options.thread_workers) == (3, 4)


@pytest.mark.parametrize("value", [0, -1, "4", 2.5, True])
def test_a_bad_worker_count_is_refused_when_the_config_is_read(value):
    with pytest.raises(evr.EventorConfigError, match="process_workers"):
        evr.load_config({"process_workers": value})


def test_thread_steps_beyond_the_workers_wait_ready_not_active(make_eventor):
    record: list = []
    ev = make_eventor(config={"thread_workers": 2})
    fan_out(ev, 6, record, seconds=0.05, meet=2)
    assert ev.run()
    assert len(record) == 12
    assert max_overlap(record) == 2
    # the engine marked them active (and fired their active triggers) only when they started
    assert engine_overlap(ev) == 2


def test_without_any_setting_thread_steps_run_at_most_32_at_once(make_eventor):
    record: list = []
    ev = make_eventor()
    fan_out(ev, 40, record, seconds=0.05, meet=32)
    assert ev.run()
    assert max_overlap(record) == 32


def test_an_active_trigger_fires_when_its_task_really_starts(make_eventor):
    ev = make_eventor(config={"thread_workers": 1})
    go, started = ev.add_event("go"), ev.add_event("started")
    ev.add_assoc(go, ev.add_step("s", func=lambda: time.sleep(0.05),
                                 triggers={evr.STEP_ACTIVE: started}))
    ev.trigger_event(go, 1)
    ev.trigger_event(go, 2)
    assert ev.run()
    tasks = {t["sequence"]: t for t in ev.store.tasks(ev.run_id)}
    fired_at = {t["sequence"]: t["created_at"] for t in ev.store.triggers(ev.run_id)
                if t["event"] == "started"}
    first, second = sorted(tasks, key=lambda seq: tasks[seq]["started_at"])
    # the second task waited ready for the one thread; its `started` fired when it began
    assert fired_at[second] >= tasks[first]["ended_at"]
    assert fired_at[second] == tasks[second]["started_at"]


def sleepy(seconds: float) -> None:
    time.sleep(seconds)


def test_process_steps_fork_at_most_the_workers(tmp_path):
    ev = evr.Eventor(name="bounded", store=str(tmp_path / "b.run.db"),
                     config={"process_workers": 2, "LOGGING": {"console": False}})
    go = ev.add_event("go")
    for i in range(8):
        ev.add_assoc(go, ev.add_step(f"s{i}", func=sleepy, kwargs={"seconds": 0.05}))
    ev.trigger_event(go, 1)
    try:
        with ChildCounter() as counter:
            assert ev.run()
        assert counter.peak == 2
        assert engine_overlap(ev) == 2
    finally:
        ev.close()


@pytest.mark.slow
def test_a_fan_out_of_10000_sleeping_process_steps_keeps_to_the_default_workers(tmp_path):
    ev = evr.Eventor(name="wide", store=str(tmp_path / "w.run.db"),
                     config={"LOGGING": {"console": False}})
    go = ev.add_event("go")
    ev.add_assoc(go, ev.add_step("s", func=sleepy, kwargs={"seconds": 0.001}))
    for seq in range(10_000):
        ev.trigger_event(go, seq)
    try:
        with ChildCounter() as counter:
            assert ev.run()
        assert 1 <= counter.peak <= default_workers()
        assert len(ev.store.tasks(ev.run_id)) == 10_000
    finally:
        ev.close()


def test_a_thread_given_up_on_at_its_timeout_is_replaced(make_eventor):
    started: list = []

    def work(i):
        started.append(i)
        time.sleep(1.2)

    ev = make_eventor(config={"thread_workers": 2, "timeout": 0.5, "stop_on_exception": False})
    go = ev.add_event("go")
    ev.add_assoc(go, ev.add_step("s", func=work, kwargs={"i": 0}))
    for seq in range(4):
        ev.trigger_event(go, seq)
    assert ev.run() is False
    # every task ran its body and timed out on its own clock; none timed out waiting
    assert len(started) == 4
    tasks = ev.store.tasks(ev.run_id)
    assert {t["error_type"] for t in tasks} == {"StepTimeout"}
    assert all(t["ended_at"] - t["started_at"] < 1.0 for t in tasks)
    ev.close()  # does not wait for the threads given up on; they end by themselves
    for thread in threading.enumerate():
        if thread.name.startswith("eventor-step"):
            thread.join(5)
