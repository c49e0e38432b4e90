"""
The ``process`` executor: each task runs in a child process forked from the engine.

Forking (rather than spawning an interpreter) keeps per-task cost near a millisecond and lets
steps be closures and lambdas, as in Eventor 5.1. The child sets its Eventor variables in
``os.environ``, runs the function, writes the pickled `Outcome` to a pipe and leaves with
``os._exit`` (no inherited atexit handler or store connection is touched). A child that dies
without reporting (``os._exit(3)``, a signal, the OOM killer) is a failure with its exit code.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable

from eventor.executors.base import Outcome, TaskRun, run_task

CHILD_CRASHED = 70  # exit code of a child whose reporting itself failed
TERM_GRACE = 3.0  # seconds between SIGTERM and SIGKILL when closing


class ProcessExecutor:
    """Runs each task in its own forked child process, reaped by a small waiter thread."""

    name = "process"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: dict[int, threading.Thread] = {}

    def submit(self, task: TaskRun, done: Callable[[Outcome], None]) -> None:
        # Text buffered in the parent would be written again by the child's flush.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, ValueError, OSError):
                pass
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which never returns
            _child_main(task, read_fd, write_fd)
        os.close(write_fd)
        waiter = threading.Thread(
            target=self._wait, args=(pid, read_fd, task, done), name=f"eventor-wait-{pid}",
            daemon=True,
        )
        with self._lock:
            self._children[pid] = waiter
        waiter.start()

    def _wait(self, pid: int, read_fd: int, task: TaskRun, done: Callable[[Outcome], None]) -> None:
        chunks = []
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
        with self._lock:
            self._children.pop(pid, None)
        done(_decode(task, pid, b"".join(chunks), os.waitstatus_to_exitcode(status)))

    @property
    def running(self) -> list[int]:
        """PIDs of children still running."""
        with self._lock:
            return list(self._children)

    def close(self) -> None:
        """Terminate children still running (SIGTERM, then SIGKILL) and reap them all."""
        with self._lock:
            children = dict(self._children)
        for pid in children:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE
        for pid, waiter in children.items():
            waiter.join(max(0.0, deadline - time.monotonic()))
            if waiter.is_alive():
                _signal(pid, signal.SIGKILL)
                waiter.join()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _child_main(task: TaskRun, read_fd: int, write_fd: int) -> None:  # pragma: no cover
    code = 0
    try:
        os.close(read_fd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.environ.update(task.env)
        data = pickle.dumps(run_task(task, os.getpid()), protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view) :]
    except BaseException:
        code = CHILD_CRASHED
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        os._exit(code)


def _decode(task: TaskRun, pid: int, data: bytes, exit_code: int) -> Outcome:
    if data and exit_code == 0:
        try:
            outcome: Outcome = pickle.loads(data)
            return outcome
        except Exception as exc:
            return Outcome(task.key, False, error_type="ProcessError",
                           error_message=f"step {task.step!r} sent an unreadable outcome: {exc}",
                           exit_code=exit_code, pid=pid)
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        message = f"process {pid} of step {task.step!r} was killed by {name}"
    else:
        message = f"process {pid} of step {task.step!r} exited with code {exit_code} before returning"
    return Outcome(task.key, False, error_type="ProcessDied", error_message=message,
                   exit_code=exit_code, pid=pid)
