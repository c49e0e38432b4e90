"""The ssh executor against a real sshd on loopback (started by .ci/run with .ci/sshd.sh)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paramiko
import pytest

import eventor as evr
from tests.conftest import ssh_env
from tests.executors import remote_steps
from tests.executors.remote_steps import Seed

QUIET = {"LOGGING": {"console": False}}
_made: list[evr.Eventor] = []


@pytest.fixture(autouse=True)
def _close_eventors():
    """Each test's Eventors are closed after it: their connections and agents end."""
    yield
    while _made:
        _made.pop().close()
    assert not [t for t in threading.enumerate() if t.name.startswith("eventor-ssh")]


def classic(tmp_path: Path, hosts: dict[str, Any], **config: Any) -> evr.Eventor:
    ev = evr.Eventor(name="remote", store=str(tmp_path / "remote.run.db"),
                     config={**QUIET, "HOSTS": hosts, **config})
    _made.append(ev)
    return ev


def one_remote_step(tmp_path: Path, hosts: dict[str, Any], func: Any, *args: Any,
                    host: str = "loop", **step: Any) -> evr.Eventor:
    ev = classic(tmp_path, hosts)
    ev.add_event("go")
    ev.add_assoc("go", ev.add_step("s", func=func, args=args, host=host, **step))
    ev.trigger_event("go")
    return ev


def only_task(ev: evr.Eventor) -> dict[str, Any]:
    (task,) = ev.store.tasks(ev.run_id)
    return task


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")
    except (FileNotFoundError, ProcessLookupError):
        return True  # reaped between the signal and the read


def wait_until(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {check}"
        time.sleep(0.02)


def test_the_seed_shape_runs_its_middle_step_on_the_host(tmp_path, loop_host):
    flow = Seed(store=str(tmp_path / "seed.run.db"), config={**QUIET, "HOSTS": loop_host})
    with flow:
        result = flow.run()
        rows = {t["step"]: t for t in flow.store.tasks(flow.run_id)}
    assert result.status == "success", result.tasks
    s2 = result["s2"]
    assert s2["s1"] == "s1 here" and s2["step"] == "s2" and s2["sequence"] == "0"
    assert s2["pid"] != os.getpid()
    assert result["s3"] == s2 and result["pong"] == "pong"  # ctx.trigger came back
    assert rows["s2"]["host"] == "loop" and rows["s2"]["executor"] == "ssh"
    assert rows["s2"]["pid"] == s2["pid"]
    assert rows["s1"]["host"] == socket.gethostname()


def test_a_remote_failure_is_recorded_with_its_traceback_and_fires_failure(tmp_path, loop_host):
    flow = Seed(fail_s2=True, store=str(tmp_path / "seed.run.db"),
                config={**QUIET, "HOSTS": loop_host})
    with flow:
        result = flow.run()
        s2 = next(t for t in flow.store.tasks(flow.run_id) if t["step"] == "s2")
    assert result["mend"] == "mended"  # the failure branch ran (so the run succeeds)
    assert s2["status"] == "failure" and s2["error_type"] == "ValueError"
    assert s2["error_message"] == "s2 failed on purpose"
    assert "remote_steps.py" in s2["traceback"] and "raise ValueError" in s2["traceback"]


def test_the_steps_log_and_output_reach_the_run_log_tagged_with_the_host(tmp_path, loop_host):
    flow = Seed(store=str(tmp_path / "seed.run.db"),
                config={"HOSTS": loop_host, "logdir": str(tmp_path / "logs"),
                        "LOGGING": {"console": False}})
    with flow:
        assert flow.run().status == "success"
    (log,) = (tmp_path / "logs").iterdir()
    lines = log.read_text().splitlines()
    said = next(line for line in lines if "s2 says hello" in line)
    printed = next(line for line in lines if "s2 printed this" in line)
    assert "[ loop ]" in said and "[ loop ]" in printed
    assert "[ WARNING ]" in said
    with sqlite3.connect(tmp_path / "seed.run.db") as db:
        (kept,) = db.execute("select output from eventor_tasks where step = 's2'").fetchone()
    assert kept == "s2 printed this\n"  # kept with the task too


def test_classic_steps_with_arguments_and_several_tasks_share_one_connection(tmp_path, loop_host):
    ev = classic(tmp_path, loop_host)
    ev.add_event("go")
    for n in range(6):
        ev.add_assoc("go", ev.add_step(f"w{n}", func=remote_steps.where, args=(f"t{n}",), host="loop"))
    ev.trigger_event("go")
    assert ev.run() is True
    tasks = ev.store.tasks(ev.run_id)
    assert {t["host"] for t in tasks} == {"loop"} and all(t["status"] == "success" for t in tasks)
    assert len({t["pid"] for t in tasks}) == 6  # a child per task


def test_a_wrong_host_key_is_refused(tmp_path, loop_host):
    key = paramiko.Ed25519Key.from_private_key_file(ssh_env()["CI_SSH_KEY"])  # not the host's key
    known = tmp_path / "known_hosts"
    port = loop_host["loop"]["port"]
    known.write_text(f"[127.0.0.1]:{port} {key.get_name()} {key.get_base64()}\n")
    hosts = {"loop": {**loop_host["loop"], "known_hosts": str(known)}}
    ev = one_remote_step(tmp_path, hosts, remote_steps.where, "x")
    assert ev.run() is False
    task = only_task(ev)
    assert task["error_type"] == "HostError"
    assert "does not match" in task["error_message"] and str(known) in task["error_message"]


def test_an_unknown_host_key_is_refused_unless_the_config_accepts_it(tmp_path, loop_host):
    known = tmp_path / "known_hosts"
    known.write_text("")
    hosts = {"loop": {**loop_host["loop"], "known_hosts": str(known)}}
    ev = one_remote_step(tmp_path, hosts, remote_steps.where, "x")
    assert ev.run() is False
    message = only_task(ev)["error_message"]
    assert "its key is unknown, so it is refused" in message and "accept_unknown_hosts" in message
    ev.close()
    hosts["loop"]["accept_unknown_hosts"] = True
    ev = one_remote_step(tmp_path / "again" if (tmp_path / "again").mkdir() is None else tmp_path,
                         hosts, remote_steps.where, "x")
    assert ev.run() is True


def test_an_unreachable_host_fails_the_step_in_bounded_time(tmp_path, loop_host):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hosts = {"loop": {**loop_host["loop"], "port": port, "connect_timeout": 2}}
    ev = one_remote_step(tmp_path, hosts, remote_steps.where, "x")
    started = time.monotonic()
    assert ev.run() is False
    assert time.monotonic() - started < 5
    task = only_task(ev)
    assert task["error_type"] == "HostError" and task["host"] == "loop"
    assert f"cannot reach host 'loop' (root@127.0.0.1:{port})" in task["error_message"]


def test_a_refused_login_names_the_user_and_the_key(tmp_path, loop_host):
    stranger = tmp_path / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    hosts = {"loop": {**loop_host["loop"], "key_file": str(stranger)}}
    ev = one_remote_step(tmp_path, hosts, remote_steps.where, "x")
    assert ev.run() is False
    message = only_task(ev)["error_message"]
    assert "refused the login of user root" in message and str(stranger) in message


def test_a_missing_interpreter_is_a_clear_failure(tmp_path, loop_host):
    hosts = {"loop": {**loop_host["loop"], "python": "/nowhere/python3"}}
    ev = one_remote_step(tmp_path, hosts, remote_steps.where, "x")
    assert ev.run() is False
    message = only_task(ev)["error_message"]
    assert "the agent did not start on host 'loop'" in message
    assert "/nowhere/python3" in message and "status 127" in message


def test_a_step_module_the_host_cannot_import_is_a_clear_failure(tmp_path, loop_host):
    module = tmp_path / "vanishing_steps.py"
    module.write_text("def step():\n    return 1\n")
    import importlib.util

    spec = importlib.util.spec_from_file_location("vanishing_steps", module)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    import sys

    sys.modules["vanishing_steps"] = loaded
    try:
        module.unlink()  # the engine has it; the host (same disk here) no longer does
        ev = one_remote_step(tmp_path, loop_host, loaded.step)
        assert ev.run() is False
    finally:
        del sys.modules["vanishing_steps"]
    task = only_task(ev)
    assert task["error_type"] == "ModuleNotFoundError"
    assert "step 's' cannot be loaded on host 'loop'" in task["error_message"]
    assert sys.executable in task["error_message"] and "vanishing_steps" in task["error_message"]


def run_in_thread(ev: evr.Eventor) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(ev.run()), daemon=True)
    thread.start()
    return thread, out


@pytest.mark.slow
def test_a_remote_process_killed_mid_step_fails_the_step(tmp_path, loop_host):
    pidfile = tmp_path / "pid"
    ev = one_remote_step(tmp_path, loop_host, remote_steps.hang, str(pidfile))
    thread, out = run_in_thread(ev)
    wait_until(lambda: pidfile.exists() and pidfile.read_text())
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    thread.join(15)
    assert out == [False]
    task = only_task(ev)
    assert task["error_type"] == "ProcessDied"
    assert task["error_message"] == (f"process {pidfile.read_text()} of step 's' on host 'loop' "
                                     "was killed by SIGKILL")


def agent_of(step_pid: int) -> tuple[int, int]:
    """The agent that forked a step, and the sshd process serving its connection."""
    def parent(pid: int) -> int:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().split(") ")[1].split()[1])

    agent = parent(step_pid)
    return agent, parent(agent)


@pytest.mark.slow
def test_a_connection_cut_mid_step_fails_it_and_stops_the_remote_step(tmp_path, loop_host):
    pidfile = tmp_path / "pid"
    ev = one_remote_step(tmp_path, loop_host, remote_steps.hang, str(pidfile))
    thread, out = run_in_thread(ev)
    wait_until(lambda: pidfile.exists() and pidfile.read_text())
    step = int(pidfile.read_text())
    agent, session = agent_of(step)
    os.kill(session, signal.SIGKILL)  # the sshd serving the connection: the link is gone
    thread.join(15)
    assert out == [False]
    task = only_task(ev)
    assert task["error_type"] == "HostError"
    assert "the connection to host 'loop' closed mid-step" in task["error_message"]
    wait_until(lambda: gone(step) and gone(agent))  # nothing left running on the host


@pytest.mark.slow
def test_a_remote_step_past_its_timeout_is_stopped_there(tmp_path, loop_host):
    pidfile = tmp_path / "pid"
    ev = one_remote_step(tmp_path, loop_host, remote_steps.hang, str(pidfile),
                         config={"timeout": 4, "timeout_grace": 1})  # login, agent, fork, print
    started = time.monotonic()
    assert ev.run() is False
    assert time.monotonic() - started < 12
    task = only_task(ev)
    assert task["error_type"] == "StepTimeout"
    assert task["output"] == "hanging now\n"  # what it printed before it was stopped
    wait_until(lambda: gone(int(pidfile.read_text())))


@pytest.mark.slow
def test_a_failed_remote_step_is_retried_on_a_new_connection(tmp_path, loop_host):
    pidfile = tmp_path / "pid"
    ev = one_remote_step(tmp_path, loop_host, remote_steps.hang_once, str(pidfile),
                         config={"retries": 1})
    thread, out = run_in_thread(ev)
    wait_until(lambda: pidfile.exists() and pidfile.read_text())
    first = int(pidfile.read_text())
    _, session = agent_of(first)
    os.kill(session, signal.SIGKILL)
    thread.join(20)
    assert out == [True]
    task = only_task(ev)
    assert task["status"] == "success" and task["host"] == "loop"
    assert int(pidfile.read_text()) != first
    tries = ev.store.tries(ev.run_id)
    assert [t["error_type"] for t in tries] == ["HostError"]


def test_a_host_the_config_does_not_know_is_refused_when_the_step_is_added(tmp_path, loop_host):
    with pytest.raises(evr.EventorConfigError, match=r"host 'elsewhere' is neither in HOSTS "
                       r"\(known: 'loop'\)"):
        one_remote_step(tmp_path, loop_host, remote_steps.where, "x", host="elsewhere")


def test_a_step_that_cannot_be_sent_is_refused_when_it_is_added(tmp_path, loop_host):
    with pytest.raises(evr.EventorConfigError, match=r"step 's' runs on host 'loop', but its "
                       r"function or arguments cannot be sent there"):
        one_remote_step(tmp_path, loop_host, lambda: 1)


def test_hosts_are_checked_when_the_config_is_read():
    with pytest.raises(evr.EventorConfigError, match=r"HOSTS.h1.prot: unknown key"):
        evr.load_config({"HOSTS": {"h1": {"prot": 22}}})
    with pytest.raises(evr.EventorConfigError, match=r"HOSTS.h1.port: expected a TCP port"):
        evr.load_config({"HOSTS": {"h1": {"port": 70000}}})
    with pytest.raises(evr.EventorConfigError, match=r"HOSTS.h1.lost_after: expected seconds > 0"):
        evr.load_config({"HOSTS": {"h1": {"lost_after": 0}}})
    assert evr.load_config({"HOSTS": {"h1": None}}).HOSTS == {"h1": None}


def test_a_host_from_the_ssh_config_file(tmp_path):
    from eventor.executors.ssh import resolve_hosts

    config = tmp_path / "ssh_config"
    config.write_text("Host build\n  HostName 10.1.2.3\n  Port 2200\n  User ci\n"
                      "  IdentityFile /keys/ci\n  UserKnownHostsFile /keys/known\n")
    spec = resolve_hosts(["build"], {"build": {"python": "/opt/py/bin/python"}}, str(config))["build"]
    assert (spec.address, spec.port, spec.user, spec.key_file, spec.known_hosts, spec.python) == (
        "10.1.2.3", 2200, "ci", "/keys/ci", "/keys/known", "/opt/py/bin/python")
    assert resolve_hosts(["build"], {}, str(config))["build"].python == "python3"
    with pytest.raises(evr.EventorConfigError, match=r"host 'test' is neither in HOSTS"):
        resolve_hosts(["test"], {}, str(config))


@pytest.mark.slow
def test_a_step_that_prints_a_flood_after_a_pause_still_ends(tmp_path, loop_host):
    ev = one_remote_step(tmp_path, loop_host, remote_steps.chatty, 4)
    started = time.monotonic()
    assert ev.run() is True
    assert time.monotonic() - started < 30
    assert only_task(ev)["result"] == '"said it all"'


@pytest.mark.slow
@pytest.mark.parametrize("then_die", [False, True])
def test_a_grandchild_holding_the_pipe_does_not_hold_the_outcome(tmp_path, loop_host, then_die):
    ev = one_remote_step(tmp_path, loop_host, remote_steps.leave_a_grandchild, then_die)
    started = time.monotonic()
    assert ev.run() is (not then_die)
    assert time.monotonic() - started < 10
    task = only_task(ev)
    if then_die:
        assert task["error_type"] == "ProcessDied" and "killed by SIGKILL" in task["error_message"]
    else:
        assert task["result"] == '"returned"'


def test_a_remote_step_sees_broken_pipes_as_python_does(tmp_path, loop_host):
    ev = one_remote_step(tmp_path, loop_host, remote_steps.broken_pipe)
    assert ev.run() is True
    assert only_task(ev)["result"] == '"handled"'


@pytest.mark.slow
def test_a_step_module_slow_to_import_does_not_pass_for_a_lost_engine(tmp_path, loop_host):
    module = tmp_path / "slow_import_steps.py"
    module.write_text("import time\ntime.sleep(4)\n\ndef step():\n    return 'imported'\n")
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("slow_import_steps", module)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    sys.modules["slow_import_steps"] = loaded
    try:  # the agent loads it by path (it is not importable by name there), taking 4 s
        hosts = {"loop": {**loop_host["loop"], "lost_after": 3}}
        ev = one_remote_step(tmp_path, hosts, loaded.step)
        assert ev.run() is True, only_task(ev)["error_message"]
    finally:
        del sys.modules["slow_import_steps"]
    assert only_task(ev)["result"] == '"imported"'


@pytest.mark.slow
def test_a_timeout_while_the_host_is_still_connecting_stops_the_task_there(tmp_path, loop_host):
    with socket.socket() as stall:  # accepts, then never says a word: the SSH banner never comes
        stall.bind(("127.0.0.1", 0))
        stall.listen()
        hosts = {"loop": {**loop_host["loop"], "port": stall.getsockname()[1],
                          "connect_timeout": 20}}
        pidfile = tmp_path / "pid"
        ev = one_remote_step(tmp_path, hosts, remote_steps.hang, str(pidfile),
                             config={"timeout": 1, "timeout_grace": 0.5})
        started = time.monotonic()
        assert ev.run() is False
        assert time.monotonic() - started < 5
        task = only_task(ev)
        assert task["error_type"] == "StepTimeout"
        ev.close()  # the connection still being made ends with it (the fixture checks)
    assert not pidfile.exists()
