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
the host. The agent stops its tasks (each child and the process group it leads) and exits
when the channel closes (the engine ended or died, or the connection dropped) or when it
hears nothing for ``give_up`` seconds (the link is down), which the engine sets shorter than
its own limit: a step never outlives the engine that started it, nor runs beside its retry.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import importlib.util
import io
import json
import logging
import os
import pickle
import queue
import selectors
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, ClassVar

from eventor.exceptions import ProcessDied
from eventor.executors.base import Outcome, TaskRun, failure, qualified_names, run_task
from eventor.executors.process import (
    FdCapture,
    die_with_parent,
    died,
    flush_std,
    left_output,
    memory_files,
    send_signal,
)

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
            "error_mro": list(outcome.error_mro), "output": outcome.output}


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
    """A forked task: its pid (also its process group), its report pipe, what it has said."""

    def __init__(self, key: int, step: str, pid: int, fd: int, files: tuple[int, int]) -> None:
        self.key, self.step, self.pid = key, step, pid
        self.files = files  # the memory files it prints into, read here if it dies
        self.fd: int | None = fd  # None once the pipe reached its end
        self.buffer = bytearray()
        self.reported = False
        self.kill_at: float | None = None  # SIGKILL due (after a cancel's grace)


class Agent:
    """
    The agent's loop, on one thread: frames in from the engine, tasks forked, children's
    frames out to the engine. Nothing in it blocks: writes to the engine are buffered and
    sent as the channel takes them, and tasks are unpickled (which imports their modules,
    perhaps slowly) on a loader thread, so the loop keeps reading, relaying and pinging.
    """

    def __init__(self, fd_in: int, fd_out: int) -> None:
        self.fd_in, self.fd_out = fd_in, fd_out
        self.host = "?"
        self.ping = 1.0
        self.give_up = 20.0
        self.children: dict[int, _Child] = {}  # by pid
        self.pipes: dict[int, _Child] = {}  # by report pipe fd
        self.selector = selectors.DefaultSelector()
        self.inbox = bytearray()
        self.outbox = bytearray()  # frames for the engine, not yet written
        self.heard = self.said = time.monotonic()
        self.cancelled: set[int] = set()  # keys cancelled before their child was forked
        # The loader thread unpickles tasks; the loop forks them. A fork must not happen while
        # the loader is importing (the child would inherit a held import lock): the loader
        # holds import_lock while it works, and the loop forks only when it can take it.
        self.to_load: queue.SimpleQueue[tuple[int, str, bytes, int] | None] = queue.SimpleQueue()
        self.loaded: collections.deque[tuple[int, str, TaskRun | Outcome, int]] = collections.deque()
        self.import_lock = threading.Lock()
        self.wake_r, self.wake_w = os.pipe()
        self.loader = threading.Thread(target=self._load, name="eventor-agent-loader", daemon=True)

    # -- the loop ------------------------------------------------------------------------

    def serve(self) -> None:
        """Run until the engine hangs up or falls silent; then stop every task and return."""
        for fd in (self.fd_in, self.fd_out, self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        self.selector.register(self.fd_in, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.loader.start()
        self.send({"type": "hello", "protocol": PROTOCOL, "pid": os.getpid(),
                   "python": sys.executable, "cwd": os.getcwd()})
        try:
            while self._turn():
                pass
        except BrokenPipeError:
            pass  # the engine's end of the channel is gone
        finally:
            self._stop_all()

    def _turn(self) -> bool:
        heard = False
        for key, _ in self.selector.select(self.ping / 2):
            fd = key.fd
            if fd == self.fd_in:
                try:
                    data = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not data:
                    return False  # the channel closed: the engine is gone
                heard = True
                self.heard = time.monotonic()
                self.inbox += data
                for body in split_frames(self.inbox):
                    self._handle(pickle.loads(body))
            elif fd == self.wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(fd, 1 << 12)
            elif fd == self.fd_out:
                self._flush()
            elif fd in self.pipes:
                self._read_child(self.pipes[fd])
        self._fork_loaded()
        self._reap()
        now = time.monotonic()
        for child in self.children.values():
            if child.kill_at is not None and now >= child.kill_at:
                send_signal(-child.pid, signal.SIGKILL)
                child.kill_at = None
        if not heard and now - self.heard > self.give_up:
            return False  # the link is down, or the engine's host is gone: stop the tasks
        if now - self.said >= self.ping and not self.outbox:
            self.send({"type": "ping"})
        return True

    def send(self, message: dict[str, Any]) -> None:
        self._queue(frame(json.dumps(message).encode()))

    def _queue(self, data: bytes) -> None:
        self.outbox += data
        self.said = time.monotonic()
        self._flush()

    def _flush(self) -> None:
        """Write what the channel takes now; wait for it to take the rest (never block)."""
        try:
            while self.outbox:
                written = os.write(self.fd_out, self.outbox)
                del self.outbox[:written]
        except (BlockingIOError, InterruptedError):
            pass
        wants = selectors.EVENT_WRITE if self.outbox else 0
        registered = self.selector.get_map().get(self.fd_out)
        if wants and registered is None:
            self.selector.register(self.fd_out, selectors.EVENT_WRITE)
        elif not wants and registered is not None:
            self.selector.unregister(self.fd_out)

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "run":
            self.to_load.put(message[1:])
        elif kind == "cancel":
            self._cancel(*message[1:])
        elif kind == "init":
            settings = message[1]
            self.host = settings["host"]
            self.ping = settings["ping"]
            self.give_up = settings["give_up"]
            _Loader.files = dict(settings["files"])

    # -- tasks ---------------------------------------------------------------------------

    def _load(self) -> None:
        """The loader thread: unpickle each task (importing its step's module) in turn."""
        while (item := self.to_load.get()) is not None:
            key, step, payload, level = item
            result: TaskRun | Outcome
            with self.import_lock:
                try:
                    result = _Loader(io.BytesIO(payload)).load()
                except BaseException as exc:  # the step's module is missing, or fails to import
                    result = failure(key, exc)
                    result.error_message = (
                        f"step {step!r} cannot be loaded on host {self.host!r} "
                        f"(python {sys.executable}, working directory {os.getcwd()}): "
                        f"{result.error_message}")
            self.loaded.append((key, step, result, level))
            with contextlib.suppress(BlockingIOError):
                os.write(self.wake_w, b"!")

    def _fork_loaded(self) -> None:
        while self.loaded:
            if not self.import_lock.acquire(blocking=False):
                return  # the loader is importing: fork when it is done (it wakes the loop)
            try:
                key, step, task, level = self.loaded.popleft()
                if key in self.cancelled:
                    self.cancelled.discard(key)
                    self.send(outcome_message(Outcome(
                        key, False, error_type=ProcessDied.__name__, error_mro=_DIED_MRO,
                        error_message=f"step {step!r} was stopped on host {self.host!r} "
                                      "before it started")))
                elif isinstance(task, Outcome):
                    self.send(outcome_message(task))
                else:
                    self._fork(task, level)
            finally:
                self.import_lock.release()

    def _fork(self, task: TaskRun, level: int) -> None:
        read_fd, write_fd = os.pipe()
        files = memory_files()
        flush_std()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            os.close(read_fd)
            keep = {write_fd, 0, 1, 2}
            others = [f for c in self.children.values() for f in c.files]
            _child_main(task, level, write_fd, parent,
                        [fd for fd in (self.fd_in, self.fd_out, self.wake_r, self.wake_w,
                                       *self.pipes, *others) if fd not in keep],
                        self.selector, files)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        child = _Child(task.key, task.step, pid, read_fd, files)
        self.children[pid] = child
        self.pipes[read_fd] = child
        self.selector.register(read_fd, selectors.EVENT_READ)

    def _cancel(self, key: int, grace: float) -> None:
        for child in self.children.values():
            if child.key == key:
                send_signal(-child.pid, signal.SIGTERM)  # the child and what it started
                child.kill_at = time.monotonic() + grace
                return
        self.cancelled.add(key)  # not forked yet: it will not be

    def _read_child(self, child: _Child) -> None:
        """Relay what the child wrote; at the pipe's end, stop watching it."""
        assert child.fd is not None
        while True:
            try:
                data = os.read(child.fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                self._close_pipe(child)
                break
            child.buffer += data
            for body in split_frames(child.buffer):
                if json.loads(body).get("type") == "outcome":
                    child.reported = True
                self._queue(frame(body))  # relayed as the child wrote it
            if len(data) < 1 << 16:
                break

    def _close_pipe(self, child: _Child) -> None:
        if child.fd is not None:
            self.selector.unregister(child.fd)
            os.close(child.fd)
            del self.pipes[child.fd]
            child.fd = None

    def _reap(self) -> None:
        """
        Collect the children that ended. A child is done when it exits, not when its pipe
        closes: a process it started may hold the pipe open for ever.
        """
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            if child.fd is not None:
                self._read_child(child)  # what it wrote before it ended
                self._close_pipe(child)
            output = None if child.reported else left_output(child.files)
            for file in child.files:
                os.close(file)
            if not child.reported:
                outcome = died(child.key, child.step, child.pid, os.waitstatus_to_exitcode(status),
                               f" on host {self.host!r}")
                outcome.output = output  # what it printed before it was killed
                self.send(outcome_message(outcome))

    def _stop_all(self) -> None:
        """Kill every task and what it started (its process group); reap them, briefly."""
        for child in self.children.values():
            send_signal(-child.pid, signal.SIGKILL)
            send_signal(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 2.0
        while self.children and time.monotonic() < deadline:
            for pid in list(self.children):
                with contextlib.suppress(ChildProcessError):
                    if os.waitpid(pid, os.WNOHANG)[0] == 0:
                        continue
                del self.children[pid]
            time.sleep(0.01)
        self.to_load.put(None)


def _child_main(task: TaskRun, level: int, fd: int, parent: int, close: list[int],
                selector: selectors.BaseSelector,
                files: tuple[int, int]) -> None:  # pragma: no cover
    """
    Run one task in the forked child and report on ``fd``; never return. The child leads a
    process group of its own, so stopping it stops what it started. Log records at
    ``level`` and above (the engine's level for the step's logger) go to the engine.
    """
    code = 0
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as in any Python program
        os.setsid()
        selector.close()
        for other in close:
            with contextlib.suppress(OSError):
                os.close(other)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # the task must not read the engine's frames
        os.close(devnull)
        die_with_parent(parent)
        pid = os.getpid()
        lock = threading.Lock()  # the step's own threads may trigger and log at once

        def send(message: dict[str, Any]) -> None:
            data = frame(json.dumps(message).encode())
            with lock:
                _write_all(fd, data)

        def emit(message: Any) -> None:  # a TriggerRequest: ctx.trigger(...)
            send({"type": "trigger", "key": message.key, "event": message.event,
                  "sequence": message.sequence})

        root = logging.getLogger()
        root.handlers[:] = [_Relay(send, task.key)]
        root.setLevel(level)
        os.environ.update(task.env)
        capture = FdCapture(files)  # what it prints: kept with its outcome, and still logged
        capture.start()
        try:
            outcome = run_task(task, pid, emit)
        except KeyboardInterrupt as exc:
            outcome = failure(task.key, exc, pid)
        outcome.output = capture.stop()
        send(outcome_message(outcome))
    except BaseException:
        code = 70
    finally:
        flush_std()
        os._exit(code)


def main() -> None:
    """Serve the engine on stdin/stdout until it hangs up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd_out = os.dup(1)
    os.dup2(2, 1)  # what steps print goes to stderr: stdout carries frames only
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    Agent(0, fd_out).serve()


if __name__ == "__main__":
    main()
