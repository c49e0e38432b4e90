"""
The ``ssh`` executor: a step declared with ``host="name"`` runs on that host.

For each host a run uses, the executor opens one SSH connection (paramiko), starts one agent
there (``python -m eventor.agent``, see `eventor.agent`) and sends it the host's tasks for the
rest of the run. The agent forks a child per task and reports each task's ``ctx.trigger``
requests, log records and outcome back over the channel, in order; the engine records them,
so the host needs the step's code and Eventor, never database credentials.

Hosts come from the config's ``HOSTS`` section, or from ``~/.ssh/config`` (or the config's
``ssh_config`` file) for a name it has a ``Host`` block for. Host keys are checked against
``known_hosts``: an unknown key is refused unless the host says ``accept_unknown_hosts: true``,
and a changed key is always refused.

Every fault ends the task as a failure whose message names the host and the cause, with
`HostError` for what went wrong with the host or the connection: unreachable, key or login
refused, the agent not starting, the connection closed or silent for ``lost_after`` seconds.
The agent gives up on a silent engine sooner than the engine gives up on it, and stops its
tasks when it does, so a task the engine has written off is not still running beside its
retry or its recovery.
"""

from __future__ import annotations

import collections
import contextlib
import fnmatch
import json
import logging
import os
import pickle
import queue
import shlex
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import paramiko

from eventor.agent import PROTOCOL, frame, split_frames
from eventor.exceptions import EventorConfigError, HostError
from eventor.executors.base import (
    Emit,
    Executor,
    Outcome,
    TaskRun,
    TriggerRequest,
    qualified_names,
)

__all__ = ["HostSpec", "SSHExecutor", "check_steps", "resolve_hosts"]

PING = 1.0  # seconds between the liveness frames each side sends when it has nothing to say
_HOST_MRO = qualified_names(HostError)


@dataclass(frozen=True, slots=True)
class HostSpec:
    """Where and how to reach one host, with the defaults filled in."""

    name: str  # as steps name it (``host="name"``); recorded as the task's host
    address: str
    port: int = 22
    user: str | None = None
    key_file: str | None = None  # None: the keys ssh would try (~/.ssh/id_*, an agent)
    known_hosts: str = "~/.ssh/known_hosts"
    accept_unknown_hosts: bool = False
    python: str = "python3"  # the interpreter the agent runs with; Eventor installed in it
    workdir: str = ""  # where the agent runs (steps import from there); "": the engine's cwd
    env: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = 10.0  # to connect, log in and hear the agent's hello
    lost_after: float = 30.0  # silence after which the host counts as lost

    @property
    def where(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.address}:{self.port}"

    def command(self) -> str:
        """The shell command that starts the agent on the host."""
        env = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in self.env.items())
        run = f"exec {'env ' + env + ' ' if env else ''}{shlex.quote(self.python)} -m eventor.agent"
        return f"cd {shlex.quote(self.workdir or os.getcwd())} && {run}"


def resolve_hosts(names: Iterable[str], hosts: Mapping[str, Any],
                  ssh_config: str | None = None) -> dict[str, HostSpec]:
    """
    The `HostSpec` of each host name: its ``HOSTS`` entry, over what the ssh config file says
    of it (``HostName``, ``Port``, ``User``, ``IdentityFile``, ``UserKnownHostsFile``).

    Raises:
        EventorConfigError: a name that is neither in ``HOSTS`` nor a ``Host`` of the ssh
            config file.
    """
    path = os.path.expanduser(ssh_config or "~/.ssh/config")
    parsed = paramiko.SSHConfig.from_path(path) if os.path.exists(path) else paramiko.SSHConfig()
    patterns = [p for p in parsed.get_hostnames() if p != "*"]
    specs = {}
    for name in names:
        entry = dict(hosts.get(name) or {})
        if name not in hosts and not any(fnmatch.fnmatch(name, p) for p in patterns):
            known = ", ".join(map(repr, hosts)) or "none"
            raise EventorConfigError(
                f"host {name!r} is neither in HOSTS (known: {known}) nor a Host of {path}; "
                f"add it: HOSTS: {{{name}: {{address: ..., user: ..., python: ...}}}}",
                key=f"HOSTS.{name}")
        found = parsed.lookup(name)
        known_hosts = entry.get("known_hosts") or found.get("userknownhostsfile", "").split(" ")[0]
        identity = found.get("identityfile") or [None]
        specs[name] = HostSpec(
            name=name,
            address=entry.get("address") or found.get("hostname") or name,
            port=int(entry.get("port") or found.get("port") or 22),
            user=entry.get("user") or found.get("user"),
            key_file=_home(entry.get("key_file") or identity[0]),
            known_hosts=known_hosts or "~/.ssh/known_hosts",
            accept_unknown_hosts=bool(entry.get("accept_unknown_hosts", False)),
            python=entry.get("python") or "python3",
            workdir=entry.get("workdir") or "",
            env={str(k): str(v) for k, v in (entry.get("env") or {}).items()},
            connect_timeout=float(entry.get("connect_timeout") or 10.0),
            lost_after=float(entry.get("lost_after") or 30.0),
        )
    return specs


def check_steps(steps: Iterable[Any], hosts: Mapping[str, Any], ssh_config: str | None) -> None:
    """
    What the engine checks when it is made, before anything runs: every host is known, and
    every remote step's function, arguments and keywords can be sent (pickled by reference).

    Raises:
        EventorConfigError: naming the step and what to change.
    """
    resolve_hosts({s.host for s in steps}, hosts, ssh_config)
    for step in steps:
        try:
            pickle.dumps((step.func, step.args, dict(step.kwargs)), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise EventorConfigError(
                f"step {step.name!r} runs on host {step.host!r}, but its function or arguments "
                f"cannot be sent there ({type(exc).__name__}: {exc}); define the function at "
                "the top level of a module the host can import, with arguments that pickle",
                key=f"step {step.name!r} host") from None


def _home(path: str | None) -> str | None:
    return os.path.expanduser(path) if path else None


class _Refused(Exception):
    """The host could not be used; the message says why (it becomes the tasks' error)."""


class _Connection:
    """
    One host's connection and agent: tasks go in as frames, outcomes come back.

    Three threads serve it, so that nothing the engine calls ever waits on the network: the
    main one connects, then reads the agent's frames and watches for silence; a writer sends
    the queued frames; a third reads the agent's stderr. Every task handed to `submit` gets
    exactly one outcome: from the agent, or from `_end` with the reason the host failed.
    """

    def __init__(self, spec: HostSpec, files: Mapping[str, str], logger: logging.Logger) -> None:
        self.spec = spec
        self._files = dict(files)
        self._logger = logger
        self._ping = min(PING, spec.lost_after / 10)
        self._lock = threading.Lock()
        self._state = "connecting"  # then "ready", then "dead"
        self._pending: list[tuple[TaskRun, bytes, Emit]] = []  # until the agent is up
        self._running: dict[int, tuple[TaskRun, Emit]] = {}
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._client: paramiko.SSHClient | None = None
        self._channel: paramiko.Channel | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._closing = False
        self._buffer = bytearray()  # frames read past the agent's hello
        self._said = time.monotonic()
        self._agent_pid: int | None = None
        self._threads: list[threading.Thread] = []
        self._start(self._main, "")

    def _start(self, target: Any, suffix: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name=f"eventor-ssh-{self.spec.name}{suffix}")
        self._threads.append(thread)
        thread.start()

    @property
    def dead(self) -> bool:
        return self._state == "dead"

    def submit(self, task: TaskRun, body: bytes, done: Emit) -> bool:
        """Send the task, or queue it until the agent is up; False when this connection ended."""
        with self._lock:
            if self._state == "dead":
                return False
            if self._state == "connecting":
                self._pending.append((task, body, done))
            else:
                self._running[task.key] = (task, done)
                self._outbox.put(body)  # under the lock: after init and the queued tasks
        return True

    def cancel(self, key: int, grace: float) -> bool:
        with self._lock:
            waiting = next((p for p in self._pending if p[0].key == key), None)
            if waiting is not None:  # not sent yet: it never will be
                self._pending.remove(waiting)
            elif key in self._running:
                self._outbox.put(pickle.dumps(("cancel", key, grace)))
                return True
            else:
                return False
        task, _, done = waiting
        done(Outcome(key, False, error_type=HostError.__name__, error_mro=_HOST_MRO,
                     error_message=f"step {task.step!r} was stopped while host "
                                   f"{self.spec.name!r} was still being connected"))
        return True

    def hang_up(self) -> None:
        """Start closing: the agent sees the channel close and stops its tasks."""
        self._closing = True
        self._end(f"the run closed its connection to host {self.spec.name!r}")

    def join(self, deadline: float) -> None:
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- the connection's threads ----------------------------------------------------------

    def _main(self) -> None:
        watchdog = threading.Timer(self.spec.connect_timeout + 1.0, self._connect_overdue)
        watchdog.daemon = True
        watchdog.start()
        try:
            self._connect()
            watchdog.cancel()
            self._ready()
            self._read()
        except _Refused as exc:
            self._end(str(exc))
        except BaseException as exc:  # paramiko can raise more than it documents
            self._end(f"host {self.spec.name!r} ({self.spec.where}) failed: "
                      f"{type(exc).__name__}: {exc}")
        finally:
            watchdog.cancel()
            if self.dead:
                self._close_client()  # also when close() came while connecting
            self._outbox.put(None)  # the writer stops

    def _connect_overdue(self) -> None:
        if self._state == "connecting":
            self._end(f"host {self.spec.name!r} ({self.spec.where}) did not let the agent start "
                      f"within {self.spec.connect_timeout:g} s (connect_timeout)")

    def _ready(self) -> None:
        """The agent is up: init first, then the tasks that waited, then everything else."""
        give_up = self.spec.lost_after * 0.75  # the agent stops its tasks before we fail them
        settings = {"host": self.spec.name, "ping": self._ping, "give_up": give_up,
                    "files": self._files}
        with self._lock:
            if self._state == "dead":
                return
            self._outbox.put(pickle.dumps(("init", settings)))
            for task, body, done in self._pending:
                self._running[task.key] = (task, done)
                self._outbox.put(body)
            self._pending = []
            self._state = "ready"
        self._start(self._write, "-writer")

    def _connect(self) -> None:
        spec = self.spec
        client = paramiko.SSHClient()
        known = os.path.expanduser(spec.known_hosts)
        if os.path.exists(known):
            client.load_host_keys(known)
        elif not spec.accept_unknown_hosts:
            raise _Refused(f"cannot check the key of host {spec.name!r}: no known_hosts file "
                           f"{known}; add the host's key there (ssh-keyscan -p {spec.port} "
                           f"{spec.address} >> {known})")
        # An unknown key is refused unless the host's config accepts it; a changed one always.
        client.set_missing_host_key_policy(
            paramiko.AutoAddPolicy() if spec.accept_unknown_hosts else paramiko.RejectPolicy())
        self._client = client
        where = f"host {spec.name!r} ({spec.where})"
        try:
            client.connect(spec.address, spec.port, username=spec.user,
                           key_filename=spec.key_file, timeout=spec.connect_timeout,
                           banner_timeout=spec.connect_timeout, auth_timeout=spec.connect_timeout,
                           channel_timeout=spec.connect_timeout,
                           look_for_keys=spec.key_file is None, allow_agent=spec.key_file is None)
        except paramiko.BadHostKeyException as exc:
            raise _Refused(f"{where} offered a host key that does not match {known}: refused "
                           f"({exc.key.get_name()} {exc.key.get_fingerprint().hex()}); if the "
                           "host was re-keyed, replace its line in known_hosts") from None
        except paramiko.AuthenticationException as exc:
            raise _Refused(f"{where} refused the login of user {spec.user or '(default)'} with "
                           f"key {spec.key_file or '(ssh defaults)'}: {exc}") from None
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise _Refused(
                    f"{where} is not in {known}: its key is unknown, so it is refused; add it "
                    f"(ssh-keyscan -p {spec.port} {spec.address} >> {known}) or set "
                    f"HOSTS.{spec.name}.accept_unknown_hosts: true") from None
            raise _Refused(f"{where}: SSH failed for user {spec.user or '(default)'} with key "
                           f"{spec.key_file or '(ssh defaults)'}: {exc}") from None
        except (OSError, EOFError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            raise _Refused(f"cannot reach {where}: {reason} "
                           f"(connect_timeout {spec.connect_timeout:g} s)") from None
        if self.dead:
            return  # closed (or overdue) while connecting
        transport = client.get_transport()
        assert transport is not None
        channel = transport.open_session(timeout=spec.connect_timeout)
        command = spec.command()
        channel.exec_command(command)
        self._channel = channel
        channel.settimeout(self._ping / 2)  # every read and write wakes up to check on things
        self._start(self._read_stderr, "-stderr", channel)
        hello = self._hello(channel, command)
        self._agent_pid = hello.get("pid")
        if hello.get("protocol") != PROTOCOL:
            raise _Refused(f"the agent on host {spec.name!r} ({hello.get('python')}) speaks protocol "
                           f"{hello.get('protocol')}, this engine {PROTOCOL}: install the same "
                           "Eventor version there")

    def _hello(self, channel: paramiko.Channel, command: str) -> dict[str, Any]:
        """Wait for the agent's first frame; if the channel closes first, say why."""
        deadline = time.monotonic() + self.spec.connect_timeout
        buffer = self._buffer
        while time.monotonic() < deadline and not self.dead:
            try:
                data = channel.recv(1 << 16)
            except TimeoutError:
                continue
            if not data:
                status, said = self._why_closed(channel, 2.0)
                raise _Refused(f"the agent did not start on host {self.spec.name!r}: `{command}` "
                               f"exited with status {status}: {said or 'nothing on stderr'}")
            buffer += data
            frames = split_frames(buffer)
            if frames:
                message: dict[str, Any] = json.loads(frames[0])
                for body in frames[1:]:  # nothing else comes before hello; kept for order
                    self._dispatch(json.loads(body))
                return message
        raise _Refused(f"the agent on host {self.spec.name!r} did not answer within "
                       f"{self.spec.connect_timeout:g} s (`{command}`)")

    def _why_closed(self, channel: paramiko.Channel, wait: float) -> tuple[Any, str]:
        """The agent's exit status (when it comes within ``wait`` s) and its last stderr lines."""
        channel.status_event.wait(wait)
        status = channel.exit_status if channel.exit_status_ready() else "unknown"
        time.sleep(0.05)  # the last stderr lines may still be on their way
        return status, " | ".join(list(self._stderr)[-5:])

    def _read(self) -> None:
        """Read the agent's frames until the connection ends, closes, or falls silent."""
        channel, spec, buffer = self._channel, self.spec, self._buffer
        assert channel is not None
        heard = time.monotonic()
        while not self.dead:
            try:
                data = channel.recv(1 << 16)
            except TimeoutError:
                data = None
            now = time.monotonic()
            if data == b"":
                if not self._closing:
                    status, said = self._why_closed(channel, 1.0)
                    self._end(f"the connection to host {spec.name!r} closed mid-step "
                              f"(agent exit status {status}){': ' + said if said else ''}")
                return
            if data:
                heard = now
                buffer += data
                for body in split_frames(buffer):
                    self._dispatch(json.loads(body))
            elif now - heard > spec.lost_after:
                self._end(f"host {spec.name!r} ({spec.where}) lost: nothing heard for "
                          f"{spec.lost_after:g} s (lost_after)")
                return
            if now - self._said >= self._ping:
                self._said = now
                self._outbox.put(pickle.dumps(("ping",)))

    def _write(self) -> None:
        """Send the queued frames in order; a channel that stops taking them is the reader's
        to judge (silence), so a full window only makes this wait."""
        channel = self._channel
        assert channel is not None
        while (body := self._outbox.get()) is not None:
            data, sent = frame(body), 0
            while sent < len(data) and not self.dead:
                try:
                    sent += channel.send(data[sent:sent + (1 << 15)])
                except TimeoutError:
                    continue
                except Exception as exc:
                    self._end(f"the connection to host {self.spec.name!r} failed while "
                              f"sending: {exc}")
                    return
            self._said = time.monotonic()

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "outcome":
            with self._lock:
                running = self._running.pop(message["key"], None)
            if running is not None:
                fields = {k: v for k, v in message.items() if k != "type"}
                fields["error_mro"] = tuple(fields.get("error_mro") or ())
                running[1](Outcome(**fields))
        elif kind == "trigger":
            with self._lock:
                running = self._running.get(message["key"])
            if running is not None:
                running[1](TriggerRequest(message["key"], message["event"], message["sequence"]))
        elif kind == "log":
            self._relay_log(message)

    def _relay_log(self, message: dict[str, Any]) -> None:
        logger = logging.getLogger(message["logger"])
        level = int(message["level"])
        if logger.isEnabledFor(level):
            with self._lock:
                running = self._running.get(message["key"])
            self._log(logger, level, message["message"], message.get("pid"),
                      running[0].step if running else "step", message.get("time"))

    def _read_stderr(self, channel: paramiko.Channel) -> None:
        """What steps print and what the agent says on stderr: kept for errors, and logged."""
        pending = b""
        while True:
            try:
                data = channel.recv_stderr(1 << 16)
            except TimeoutError:
                if self.dead and not channel.recv_stderr_ready():
                    return
                continue
            except Exception:
                return
            if not data:
                break
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                self._stderr_line(line)
        if pending:
            self._stderr_line(pending)

    def _stderr_line(self, line: bytes) -> None:
        text = line.decode(errors="replace")
        self._stderr.append(text)
        with contextlib.suppress(Exception):  # a broken handler must not stop the reading
            self._log(self._logger, logging.INFO, text, self._agent_pid, "stderr")

    def _log(self, logger: logging.Logger, level: int, text: str, pid: int | None, where: str,
             when: float | None = None) -> None:
        """Log a line from the host as if there: the host's name, the remote pid."""
        record = logger.makeRecord(logger.name, level, "remote", 0, text, (), None,
                                   func=where, extra={"hostname": self.spec.name})
        record.module = "remote"
        if pid:
            record.process = pid
        if when:
            record.created = float(when)
        logger.handle(record)

    def _end(self, reason: str) -> None:
        """Fail every task still queued or running here with ``reason``; hang up."""
        with self._lock:
            if self._state == "dead":
                return
            self._state = "dead"
            waiting = [(task, done) for task, _, done in self._pending]
            waiting += list(self._running.values())
            self._pending, self._running = [], {}
        self._outbox.put(None)
        for task, done in waiting:
            done(Outcome(task.key, False, error_type=HostError.__name__,
                         error_message=f"step {task.step!r}: {reason}", error_mro=_HOST_MRO))
        self._close_client()

    def _close_client(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()


class SSHExecutor(Executor):
    """
    Runs each task on its step's host through that host's agent; one connection per host,
    opened when the run first sends it a task and kept until the executor closes (a lost
    connection is opened again for the next task).

    Args:
        hosts: the hosts, by name (`resolve_hosts`).
        files: module name -> file, for step modules the hosts may only load by path
            (``__main__``, a flow file loaded by the ``eventor`` command).
        logger: where stderr lines from the hosts are logged.
    """

    name: ClassVar[str] = "ssh"

    def __init__(self, hosts: Mapping[str, HostSpec], files: Mapping[str, str] | None = None,
                 logger: logging.Logger | None = None) -> None:
        self._hosts = dict(hosts)
        self._files = dict(files or {})
        self._logger = logger or logging.getLogger("eventor.ssh")
        self._lock = threading.Lock()
        self._connections: dict[str, _Connection] = {}
        self._closed = False

    def submit(self, task: TaskRun, done: Emit) -> None:
        host = task.host
        if host not in self._hosts:
            done(Outcome(task.key, False, error_type=HostError.__name__, error_mro=_HOST_MRO,
                         error_message=f"step {task.step!r} names host {host!r}, which the run "
                                       f"does not know (hosts: {', '.join(self._hosts)})"))
            return
        try:
            sent = replace(task, kwargs=dict(task.kwargs), env=dict(task.env))  # no mappingproxy
            inner = pickle.dumps(sent, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            done(Outcome(task.key, False, error_type=type(exc).__name__,
                         error_message=f"step {task.step!r} cannot be sent to host {host!r}: {exc}"))
            return
        body = pickle.dumps(("run", task.key, task.step, inner, _log_level(task)))
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the ssh executor is closed")
                connection = self._connections.get(host)
                if connection is None or connection.dead:
                    connection = _Connection(self._hosts[host], self._files, self._logger)
                    self._connections[host] = connection
            if connection.submit(task, body, done):
                return

    def cancel(self, key: int, grace: float) -> bool:
        with self._lock:
            connections = list(self._connections.values())
        return any(c.cancel(key, grace) for c in connections)

    def close(self) -> None:
        """Hang up every host at once, then wait (a bounded time) for their threads."""
        with self._lock:
            self._closed = True
            connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            connection.hang_up()
        deadline = time.monotonic() + 2 * PING + 1.0
        for connection in connections:
            connection.join(deadline)


def _log_level(task: TaskRun) -> int:
    """The engine's level for the task's logger: the agent relays records at or above it."""
    name = next((v for k, v in task.env.items() if k.endswith("LOGGER_NAME")), "eventor")
    return logging.getLogger(name).getEffectiveLevel()


def module_files(funcs: Iterable[Any]) -> dict[str, str]:
    """
    The files of ``__main__`` and of the modules the given step functions come from, for an
    agent that cannot import them by name.
    """
    names = {"__main__"}
    for func in funcs:
        owner = getattr(func, "owner", None)
        module = getattr(owner if owner is not None else func, "__module__", None)
        if isinstance(module, str):
            names.add(module)
    files = {}
    for name in names:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            files[name] = os.path.abspath(path)
    return files

