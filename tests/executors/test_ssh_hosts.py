"""
Several hosts, a host lost mid-run, and an engine killed during remote steps.

The hosts are sshd servers in network namespaces of their own (.ci/sshd.sh, start_ssh_hosts);
taking a host's link down is a real "host lost" fault: no error, just silence.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import eventor as evr
from tests.conftest import ROOT, host_config, ssh_env
from tests.executors import remote_steps
from tests.executors.test_ssh import agent_of, gone, wait_until

pytestmark = pytest.mark.slow

QUIET = {"LOGGING": {"console": False}}


def netns_hosts() -> dict[str, str]:
    """Namespace -> address of the hosts .ci/sshd.sh made, or a skip (a failure in CI)."""
    ssh_env()
    pairs = os.environ.get("CI_SSH_NETNS", "")
    if not pairs:
        if os.environ.get("CI_REQUIRE_SSH"):
            pytest.fail("no sshd hosts in network namespaces, and CI requires them (.ci/sshd.sh)")
        pytest.skip("no sshd hosts in network namespaces: .ci/run starts them (CI_SSH_NETNS)")
    return dict(pair.split("=") for pair in pairs.split())


def link(namespace: str, state: str) -> None:
    subprocess.run(["ip", "link", "set", f"{namespace}-p", state], check=True)


def test_steps_spread_over_two_hosts_survive_losing_one_and_recover_after(tmp_path):
    (ns1, address1), (_, address2) = sorted(netns_hosts().items())
    hosts = {"h1": host_config(address1, 22, lost_after=3, connect_timeout=5),
             "h2": host_config(address2, 22, lost_after=3, connect_timeout=5)}
    config = {**QUIET, "HOSTS": hosts}
    store = str(tmp_path / "spread.run.db")

    def spread(h1_sleeps: float, **mode: Any) -> evr.Eventor:
        ev = evr.Eventor(name="spread", store=store, config=config, run_id="spread", **mode)
        ev.add_event("go")
        for n in range(4):  # two steps per host; h1's are caught mid-step by the cut
            host, sleeps = ("h1", h1_sleeps) if n % 2 == 0 else ("h2", 4.0)
            ev.add_assoc("go", ev.add_step(f"s{n}", func=remote_steps.hang,
                                           args=(str(tmp_path / f"pid{n}"), sleeps), host=host))
        ev.trigger_event("go")
        return ev

    ev = spread(h1_sleeps=60.0)
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(ev.run()), daemon=True)
    thread.start()
    pidfiles = [tmp_path / f"pid{n}" for n in range(4)]
    try:
        wait_until(lambda: all(p.exists() and p.read_text() for p in pidfiles))
        lost = time.monotonic()
        link(ns1, "down")  # h1 falls silent mid-step
        thread.join(20)
        assert time.monotonic() - lost < 3 + 5  # lost_after, then the engine is told
        assert out == [False]
        tasks = {t["step"]: t for t in ev.store.tasks("spread")}
        assert {s: (t["host"], t["status"]) for s, t in tasks.items()} == {
            "s0": ("h1", "failure"), "s1": ("h2", "success"),
            "s2": ("h1", "failure"), "s3": ("h2", "success")}
        for s in ("s0", "s2"):
            assert tasks[s]["error_type"] == "HostError"
            assert "host 'h1' (root@10.200.0.11:22) lost: nothing heard for 3 s" in tasks[s]["error_message"]
        # The agent on h1 stops its tasks when the engine falls silent: none is left running
        # beside the reruns that recovery starts.
        for n in (0, 2):
            wait_until(lambda n=n: gone(int(pidfiles[n].read_text())))
    finally:
        link(ns1, "up")
        ev.close()
    first = {n: pidfiles[n].read_text() for n in (0, 2)}
    again = spread(h1_sleeps=0.5, run_mode=evr.RUN_RECOVER)
    try:
        assert again.run() is True
        tasks = {t["step"]: t for t in again.store.tasks("spread", attempt=1)}
        assert all(t["status"] == "success" for t in tasks.values())
        assert tasks["s1"]["executor"] == "skip" and tasks["s0"]["host"] == "h1"
        assert all(pidfiles[n].read_text() != first[n] for n in (0, 2))  # really rerun
    finally:
        again.close()


KILLED_ENGINE = """
import sys
import eventor as evr
from tests.executors import remote_steps

mode, databases, pidfile, hosts = sys.argv[1], eval(sys.argv[2]), sys.argv[3], eval(sys.argv[4])
config = {"LOGGING": {"console": False}, "HOSTS": hosts, "DATABASES": databases}
ev = evr.Eventor(name="far", store="pg", config=config, run_id="far",
                 run_mode=evr.RUN_RECOVER if mode == "recover" else evr.RUN_RESTART)
go, here = ev.add_event("go"), ev.add_event("here")
ev.add_assoc(go, ev.add_step("remote", func=remote_steps.hang, args=(pidfile, 60.0 if mode == "run" else 0.1),
                             host="loop", triggers={evr.STEP_SUCCESS: [here]}))
ev.add_assoc(here, ev.add_step("local", func=remote_steps.where, args=("local",)))
ev.trigger_event(go)
print("ok" if ev.run() else "failed", flush=True)
"""


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # the shared-database case
def test_an_engine_killed_during_a_remote_step_is_recovered_from_another_process(tmp_path, backend):
    script, pidfile = tmp_path / "far.py", tmp_path / "pid"
    script.write_text(KILLED_ENGINE)
    hosts = repr({"loop": host_config()})
    databases = repr(backend.config["DATABASES"])
    engine = subprocess.Popen([sys.executable, str(script), "run", databases, str(pidfile), hosts],
                              cwd=ROOT, start_new_session=True)
    try:
        wait_until(lambda: pidfile.exists() and pidfile.read_text(), timeout=30)
        step = int(pidfile.read_text())
        agent, _ = agent_of(step)
        os.killpg(engine.pid, signal.SIGKILL)
        engine.wait(10)
    finally:
        if engine.poll() is None:
            os.killpg(engine.pid, signal.SIGKILL)
    # The connection died with the engine: the agent stops the step rather than let it
    # finish beside its rerun.
    wait_until(lambda: gone(step) and gone(agent))
    done = subprocess.run([sys.executable, str(script), "recover", databases, str(pidfile), hosts],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
    store = backend.open()
    try:
        tasks = store.tasks("far", attempt=1)
        assert {t["step"]: (t["status"], t["host"]) for t in tasks} == {
            "remote": ("success", "loop"), "local": ("success", os.uname().nodename)}
        assert int(pidfile.read_text()) != step
    finally:
        store.close()



def test_a_task_sent_into_a_dead_link_fails_with_the_host_lost_not_a_hang(tmp_path):
    namespace, address = sorted(netns_hosts().items())[0]
    hosts = {"h1": host_config(address, 22, lost_after=3, connect_timeout=2)}
    ev = evr.Eventor(name="dead", store=str(tmp_path / "dead.run.db"),
                     config={**QUIET, "HOSTS": hosts, "task_construct": "thread"})
    go, later = ev.add_event("go"), ev.add_event("later")
    pidfile = tmp_path / "pid"
    ev.add_assoc(go, ev.add_step("first", func=remote_steps.hang, args=(str(pidfile), 30.0), host="h1"))
    down = threading.Event()  # "second" is sent once the link is down, however slow the start
    ev.add_assoc(go, ev.add_step("wait", func=lambda: down.wait(30) and "waited",
                                 triggers={evr.STEP_SUCCESS: [later]}))
    big = "x" * 3_000_000  # more than the link's buffers take: the send would block
    ev.add_assoc(later, ev.add_step("second", func=remote_steps.where, args=(big,), host="h1"))
    ev.trigger_event(go)
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(ev.run()), daemon=True)
    thread.start()
    try:
        wait_until(lambda: pidfile.exists() and pidfile.read_text())
        link(namespace, "down")  # before "wait" ends and "second" is sent
        down.set()
        thread.join(15)
        assert out == [False], "the run did not end"
        tasks = {t["step"]: t for t in ev.store.tasks(ev.run_id)}
        assert tasks["first"]["error_type"] == tasks["second"]["error_type"] == "HostError"
        assert "lost: nothing heard for 3 s" in tasks["second"]["error_message"]
        wait_until(lambda: gone(int(pidfile.read_text())))
    finally:
        down.set()
        link(namespace, "up")
        ev.close()
