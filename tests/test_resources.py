"""Resource pools: all-or-nothing grants, in order, held as leases in the store."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time

import pytest

import eventor as evr
from eventor.store import Batch
from eventor.store.base import LeaseRequest, TaskRelease
from tests.conftest import fan_out, max_overlap, slow_then
from tests.crash_harness import ROOT

QUIET = {"LOGGING": {"console": False}, "task_construct": "thread"}


def test_two_steps_on_a_pool_of_one_never_overlap(make_eventor):
    record, pool = [], evr.ResourcePool("one", 1)
    ev = make_eventor()
    fan_out(ev, ["a", "b"], record, 0.05, acquires=[(pool, 1)])
    assert ev.run()
    assert max_overlap(record) == 1
    assert ev.store.leases(ev.run_id, held=True) == []
    assert [r["step"] for r in ev.store.leases(ev.run_id)] == ["a", "b"]


def test_a_pool_of_two_runs_five_steps_at_most_two_at_once(make_eventor):
    record = []
    ev = make_eventor(config={"POOLS": {"db": 2}})
    fan_out(ev, 5, record, 0.05, meet=2, acquires=[("db", 1)])
    assert ev.run()
    assert max_overlap(record) == 2
    assert len(record) == 2 * 5


def test_the_seed_shape_of_a_pool_works():
    class R(evr.Resource):
        pass

    pool = evr.ResourcePool("RP1", resource_cls=R, policy={"resource_limit": 2}).load()
    assert (pool.name, pool.limit, pool.resource_cls) == ("RP1", 2, R)
    with pytest.raises(evr.EventorConfigError, match="expected a positive int limit"):
        evr.ResourcePool("RP2")


def test_a_hold_across_a_loop_serializes_the_sequences(make_eventor):
    """start acquires and keeps (releases=[]); end, later in the sequence, releases."""
    record, pool, marks = [], evr.ResourcePool("loop", 1), []
    ev = make_eventor()
    go, started, worked = ev.add_event("go"), ev.add_event("started"), ev.add_event("worked")
    ev.add_step("start", lambda: marks.append(("start", time.monotonic())), acquires=[(pool, 1)],
                releases=[], triggers={evr.STEP_SUCCESS: started})
    ev.add_step("work", slow_then(record, "work", 0.03), triggers={evr.STEP_SUCCESS: worked})
    ev.add_step("end", lambda: marks.append(("end", time.monotonic())), releases=[pool])
    ev.add_assoc(go, "start")
    ev.add_assoc(started, "work")
    ev.add_assoc(worked, "end")
    for seq in range(3):
        ev.trigger_event(go, seq)
    assert ev.run()
    assert [m for m, _ in sorted(marks, key=lambda m: m[1])] == ["start", "end"] * 3
    assert max_overlap(record) == 1
    assert ev.store.leases(ev.run_id, held=True) == []


def test_a_task_waiting_for_a_pool_holds_no_concurrency_slot(make_eventor):
    record, pool = [], evr.ResourcePool("ext", 1)
    ev = make_eventor(config={"max_concurrent": 1})
    store = ev.store
    # another program holds the pool's only unit, and releases it once "free" has run
    store.acquire([LeaseRequest(0, "other", 0, "x", "1", (("ext", 1, 1),))], now=time.time())
    go = ev.add_event("go")
    ev.add_step("needs", slow_then(record, "needs", 0.05), acquires=[(pool, 1)])
    work = slow_then(record, "free", 0.05)

    def release() -> None:
        store.write(Batch(releases=[TaskRelease("other", 0, "x", "1", time.time())]))

    def free_then_release() -> None:
        work()
        release()

    ev.add_step("free", free_then_release)
    ev.add_assoc(go, "needs", "free")
    ev.trigger_event(go, 1)
    fallback = threading.Timer(10, release)  # if "needs" kept the slot: fail, not hang
    fallback.start()
    try:
        assert ev.run()
    finally:
        fallback.cancel()
    order = [name for kind, name, _ in sorted(record, key=lambda r: r[2]) if kind == "start"]
    assert order == ["free", "needs"]  # free ran while needs waited for the other program


def test_failed_tasks_release_their_pool_too(make_eventor):
    pool = evr.ResourcePool("p", 1)
    ev = make_eventor(config={"stop_on_exception": False})
    go = ev.add_event("go")
    ev.add_step("boom", lambda: 1 / 0, acquires=[(pool, 1)])
    ev.add_step("after", lambda: "ok", acquires=[(pool, 1)])
    ev.add_assoc(go, "boom", "after")
    ev.trigger_event(go, 1)
    assert not ev.run()
    assert {t["step"]: t["status"] for t in ev.store.tasks(ev.run_id)} == {
        "boom": "failure", "after": "success"}
    assert ev.store.leases(ev.run_id, held=True) == []


def test_a_hold_nothing_will_release_fails_as_a_deadlock_instead_of_hanging(make_eventor):
    pool = evr.ResourcePool("stuck", 1)
    ev = make_eventor()
    go = ev.add_event("go")
    ev.add_step("hold", lambda: "held", acquires=[(pool, 1)], releases=[])
    ev.add_assoc(go, "hold")
    ev.trigger_event(go, 1)
    ev.trigger_event(go, 2)
    assert not ev.run()
    (task,) = [t for t in ev.store.tasks(ev.run_id) if t["status"] == "failure"]
    assert task["error_type"] == "ResourceDeadlock"
    assert "held by this run (stuck by hold[" in task["error_message"]
    assert ev.store.leases(ev.run_id, held=True) == []  # a finished run holds nothing


def test_an_undeclared_pool_or_one_too_small_is_a_config_error(make_eventor):
    ev = make_eventor(config={"POOLS": {"db": 1}})
    ev.add_event("go")
    with pytest.raises(evr.EventorConfigError, match="acquires 2 of pool 'db', which has only 1"):
        ev.add_step("s", acquires=[("db", 2)])
    with pytest.raises(evr.EventorConfigError, match=r"EVENTOR.POOLS.db: expected a positive int"):
        evr.load_config({"EVENTOR": {"POOLS": {"db": 0}}})


PROGRAM = """
import json, sys, time
import eventor as evr
store, out, run_id, databases = sys.argv[1:]

def work(name):
    start = time.time()
    time.sleep(0.05)
    with open(out, "a") as f:
        f.write(json.dumps([run_id, name, start, time.time()]) + "\\n")

ev = evr.Eventor(name="p", store=store, run_id=run_id,
                 config={"LOGGING": {"console": False}, "POOLS": {"shared": 1},
                         "DATABASES": json.loads(databases)})
go = ev.add_event("go")
for i in range(4):
    ev.add_step(f"s{i}", work, args=(f"s{i}",), acquires=[("shared", 1)])
    ev.add_assoc(go, f"s{i}")
ev.trigger_event(go, 1)
ok = ev.run()
ev.close()
raise SystemExit(0 if ok else 1)
"""


@pytest.mark.slow
def test_a_pool_is_honoured_across_two_programs_sharing_the_store(tmp_path, backend):
    import json

    store, out = backend.store, tmp_path / "spans"
    databases = json.dumps(backend.config.get("DATABASES", {}))
    procs = [subprocess.Popen([sys.executable, "-c", PROGRAM, store, str(out), r, databases],
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              stderr=subprocess.PIPE, text=True) for r in ("left", "right")]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 8
    spans = sorted((start, end) for _, _, start, end in rows)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
