"""
The remote end of the ``ssh`` executor: ``python -m eventor.agent``.

The engine starts one agent per host per run, over one SSH channel, and keeps it for the run's
tasks. The agent forks a child for each task (so a step that crashes, leaks or is killed takes
only its child down), relays what the child reports, and writes nothing itself: the engine,
which stays the only writer of the store, hears everything over the channel.

The channel carries frames, each a 4-byte big-endian length and a body:

- engine to agent: a pickle, ``("init", settings)``, ``("run", key, step, task_pickle, level)``,
  ``("cancel", key, grace)`` or ``("ping",)``. The task is pickled by reference (module and
  name), so the step's code must be importable here, as in Eventor 5.1.
- agent to engine: JSON objects, ``{"type": "hello" | "ping" | "outcome" | "trigger" | "log"}``:
  plain data, so the engine never unpickles what a remote host sends.

Stdout carries only frames: the agent moves it aside at start and points file descriptor 1 at
stderr, whose lines (what steps print, a traceback of the agent) the engine logs, tagged with
the host. The agent stops its tasks and exits when the channel closes (the engine ended or
died, or the connection dropped) or when it hears nothing for ``give_up`` seconds (the link is
down): a step never outlives the engine that started it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import logging
import os
import pickle
import selectors
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, ClassVar

from eventor.exceptions import ProcessDied
from eventor.executors.base import Outcome, TaskRun, failure, qualified_names, run_task
from eventor.executors.process import die_with_parent, flush_std

__all__ = ["PROTOCOL", "main"]

PROTOCOL = 1  # the frame protocol's version; the engine refuses an agent that speaks another
HEADER = struct.Struct(">I")
_DIED_MRO = qualified_names(ProcessDied)


def frame(body: bytes) -> bytes:
    """``body`` as one frame: its length, then itself."""
    return HEADER.pack(len(body)) + body


def split_frames(buffer: bytearray) -> list[bytes]:
    """Take the complete frames at the front of ``buffer`` out of it."""
    frames = []
    while len(buffer) >= HEADER.size:
        size = HEADER.unpack_from(buffer)[0]
        if len(buffer) < HEADER.size + size:
            break
        frames.append(bytes(buffer[HEADER.size:HEADER.size + size]))
        del buffer[:HEADER.size + size]
    return frames


def outcome_message(outcome: Outcome) -> dict[str, Any]:
    """An `Outcome` as the JSON object the agent sends."""
    return {"type": "outcome", "key": outcome.key, "ok": outcome.ok,
            "result_kind": outcome.result_kind, "result": outcome.result,
            "error_type": outcome.error_type, "error_message": outcome.error_message,
            "traceback": outcome.traceback, "exit_code": outcome.exit_code, "pid": outcome.pid,
            "error_mro": list(outcome.error_mro)}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Loader(pickle.Unpickler):
    """
    Unpickles a task, importing its step's module by name, or from the file the engine
    loaded it from when that name is not importable here (a script run as ``__main__``, or a
    flow file the ``eventor`` command loaded by path). Those files are loaded as modules of
    their own, so a script's ``if __name__ == "__main__":`` block does not run here.
    """

    files: ClassVar[dict[str, str]] = {}  # module name -> file, from the engine's init
    loaded: ClassVar[dict[str, Any]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__main__" or (module in self.files and module not in sys.modules
                                    and importlib.util.find_spec(module) is None):
            target: Any = self._load_file(module)
            for part in name.split("."):
                target = getattr(target, part)
            return target
        return super().find_class(module, name)

    def _load_file(self, module: str) -> Any:
        if module in self.loaded:
            return self.loaded[module]
        path = self.files.get(module)
        if not path:
            raise ModuleNotFoundError(
                f"the step's module {module!r} was not loaded from a file the agent can load",
                name=module)
        if not os.path.exists(path):
            raise ModuleNotFoundError(f"no module {module!r}: its file {path} is not on this host",
                                      name=module)
        alias = "__mp_main__" if module == "__main__" else module
        spec = importlib.util.spec_from_file_location(alias, path)
        assert spec is not None and spec.loader is not None
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[alias] = loaded
        spec.loader.exec_module(loaded)
        self.loaded[module] = loaded
        return loaded


class _Relay(logging.Handler):
    """Sends a task's log records to the engine, which logs them in the run's log."""

    def __init__(self, send: Callable[[dict[str, Any]], None], key: int) -> None:
        super().__init__()
        self._send, self._key = send, key

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            self._send({"type": "log", "key": self._key, "logger": record.name,
                        "level": record.levelno, "message": message, "time": record.created,
                        "pid": record.process})
        except Exception:
            self.handleError(record)


class _Child:
    """A forked task: its pid, the pipe it reports on, and what it has said so far."""

    def __init__(self, key: int, step: str, pid: int, fd: int) -> None:
        self.key, self.step, self.pid, self.fd = key, step, pid, fd
        self.buffer = bytearray()
        self.reported = False
        self.kill_at: float | None = None  # SIGKILL due (after a cancel's grace)


class Agent:
    """The agent's loop: tasks in from the engine, frames out from the tasks' children."""

    def __init__(self, fd_in: int, fd_out: int) -> None:
        self.fd_in, self.fd_out = fd_in, fd_out
        self.host = "?"
        self.ping = 1.0
        self.give_up = 20.0
        self.children: dict[int, _Child] = {}  # by pipe fd
        self.selector = selectors.DefaultSelector()
        self.inbox = bytearray()
        self.heard = self.said = time.monotonic()

    def send(self, message: dict[str, Any]) -> None:
        _write_all(self.fd_out, frame(json.dumps(message).encode()))
        self.said = time.monotonic()

    def serve(self) -> None:
        """Run until the engine hangs up or falls silent; then stop every task and return."""
        self.send({"type": "hello", "protocol": PROTOCOL, "pid": os.getpid(),
                   "python": sys.executable, "cwd": os.getcwd()})
        os.set_blocking(self.fd_in, False)
        self.selector.register(self.fd_in, selectors.EVENT_READ)
        try:
            while self._turn():
                pass
        finally:
            self._stop_all()

    def _turn(self) -> bool:
        for key, _ in self.selector.select(self.ping / 2):
            fd = key.fd
            if fd == self.fd_in:
                try:
                    data = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not data:
                    return False  # the channel closed: the engine is gone
                self.heard = time.monotonic()
                self.inbox += data
                for body in split_frames(self.inbox):
                    self._handle(pickle.loads(body))
            else:
                self._read_child(self.children[fd])
        now = time.monotonic()
        for child in list(self.children.values()):
            if child.kill_at is not None and now >= child.kill_at:
                _kill(child.pid, signal.SIGKILL)
                child.kill_at = None
        if now - self.heard > self.give_up:
            print(f"eventor agent on {self.host}: nothing heard from the engine for "
                  f"{self.give_up:g} s; stopping its tasks", file=sys.stderr, flush=True)
            return False
        if now - self.said >= self.ping:
            self.send({"type": "ping"})
        return True

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "run":
            self._start(*message[1:])
        elif kind == "cancel":
            self._cancel(*message[1:])
        elif kind == "init":
            settings = message[1]
            self.host = settings["host"]
            self.ping = settings["ping"]
            self.give_up = settings["give_up"]
            _Loader.files = dict(settings["files"])

    def _start(self, key: int, step: str, payload: bytes, level: int) -> None:
        try:
            task: TaskRun = _Loader(io.BytesIO(payload)).load()
        except BaseException as exc:  # the step's module is missing here, or fails to import
            outcome = failure(key, exc)
            outcome.error_message = (
                f"step {step!r} cannot be loaded on host {self.host!r} "
                f"(python {sys.executable}, working directory {os.getcwd()}): "
                f"{outcome.error_message}")
            self.send(outcome_message(outcome))
            return
        read_fd, write_fd = os.pipe()
        flush_std()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            os.close(read_fd)
            _child_main(task, level, write_fd, parent, self)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.children[read_fd] = _Child(key, step, pid, read_fd)
        self.selector.register(read_fd, selectors.EVENT_READ)

    def _cancel(self, key: int, grace: float) -> None:
        for child in self.children.values():
            if child.key == key:
                _kill(child.pid, signal.SIGTERM)
                child.kill_at = time.monotonic() + grace

    def _read_child(self, child: _Child) -> None:
        try:
            data = os.read(child.fd, 1 << 16)
        except BlockingIOError:
            return
        if data:
            child.buffer += data
            for body in split_frames(child.buffer):
                if json.loads(body).get("type") == "outcome":
                    child.reported = True
                _write_all(self.fd_out, frame(body))  # relayed as the child wrote it
                self.said = time.monotonic()
            return
        self.selector.unregister(child.fd)
        os.close(child.fd)
        del self.children[child.fd]
        _, status = os.waitpid(child.pid, 0)
        if not child.reported:
            self.send(outcome_message(self._death(child, os.waitstatus_to_exitcode(status))))

    def _death(self, child: _Child, code: int) -> Outcome:
        where = f"process {child.pid} of step {child.step!r} on host {self.host!r}"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            message = f"{where} was killed by {name}"
        else:
            message = f"{where} exited with code {code} before returning"
        return Outcome(child.key, False, error_type=ProcessDied.__name__, error_message=message,
                       exit_code=code, pid=child.pid, error_mro=_DIED_MRO)

    def _stop_all(self) -> None:
        for child in self.children.values():
            _kill(child.pid, signal.SIGKILL)
        for child in self.children.values():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child.pid, 0)
        self.children.clear()


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _child_main(task: TaskRun, level: int, fd: int, parent: int,
                agent: Agent) -> None:  # pragma: no cover
    """
    Run one task in the forked child and report on ``fd``; never return. Log records at
    ``level`` and above (the engine's level for the step's logger) go to the engine.
    """
    code = 0
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        agent.selector.close()
        for other in agent.children:
            os.close(other)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # the task must not read the engine's frames
        os.close(devnull)
        os.close(agent.fd_out)
        die_with_parent(parent)
        pid = os.getpid()

        def send(message: dict[str, Any]) -> None:
            _write_all(fd, frame(json.dumps(message).encode()))

        def emit(message: Any) -> None:  # a TriggerRequest: ctx.trigger(...)
            send({"type": "trigger", "key": message.key, "event": message.event,
                  "sequence": message.sequence})

        root = logging.getLogger()
        root.handlers[:] = [_Relay(send, task.key)]
        root.setLevel(level)
        os.environ.update(task.env)
        try:
            outcome = run_task(task, pid, emit)
        except KeyboardInterrupt as exc:
            outcome = failure(task.key, exc, pid)
        flush_std()
        send(outcome_message(outcome))
    except BaseException:
        code = 70
    finally:
        flush_std()
        os._exit(code)


def main() -> None:
    """Serve the engine on stdin/stdout until it hangs up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # the engine gone mid-write: just end
    fd_out = os.dup(1)
    os.dup2(2, 1)  # what steps print goes to stderr: stdout carries frames only
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    Agent(0, fd_out).serve()


if __name__ == "__main__":
    main()
