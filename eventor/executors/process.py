"""
The ``process`` executor: tasks run in worker processes forked from the engine.

A worker is forked when a task finds no idle one, runs tasks one at a time, and is reused:
on this kind of machine a fork of a Python process with SQLAlchemy loaded costs about 3 ms,
ten times the rest of a step. Forking (rather than spawning an interpreter) means steps may
be closures and lambdas, as in Eventor 5.1: the worker finds the step's function, arguments
and keywords in its own copy of the graph, so nothing but the task's identity and
environment crosses the pipe.

Isolation: each task sees its Eventor variables in ``os.environ`` (restored afterwards); a
worker that dies (``os._exit(3)``, a signal, the OOM killer) fails its task with the exit
code and is replaced; ``max_tasks_per_child=1`` gives every task a fresh process, as Eventor
5.1 did, at the cost of a fork per task.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import fcntl
import logging
import os
import pickle
import signal
import struct
import sys
import termios
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, ClassVar

from eventor.exceptions import ProcessDied
from eventor.executors.base import (
    FORK_LOCK,
    OUTPUT_LIMIT,
    Emit,
    Executor,
    Outcome,
    Requeue,
    TaskRun,
    failure,
    output_tail,
    qualified_names,
    run_task,
)

TERM_GRACE = 3.0  # seconds between SIGTERM and SIGKILL when closing busy workers
_HEADER = struct.Struct(">I")
_DIED_MRO = qualified_names(ProcessDied)


def flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    for ref in list(getattr(logging, "_handlerList", ())):  # a worker ends with os._exit
        handler = ref()
        if handler is not None:
            with contextlib.suppress(Exception):
                handler.flush()


def memory_files() -> tuple[int, int]:
    """Two memory files, for a task's stdout and stderr (see `FdCapture`, `left_output`)."""
    return (os.memfd_create("eventor-stdout", os.MFD_CLOEXEC),
            os.memfd_create("eventor-stderr", os.MFD_CLOEXEC))


def _tails(files: tuple[int, int], echo: tuple[int, int] | None) -> str | None:
    """The end of what each memory file holds, written on to ``echo`` first; both joined."""
    parts = []
    for target, file in zip(echo or (None, None), files, strict=True):
        size = os.fstat(file).st_size
        if not size:
            continue
        if target is not None:
            with contextlib.suppress(OSError):  # the console may be gone; the store is not
                offset = 0
                while offset < size:
                    offset += os.sendfile(target, file, offset, size - offset) or size
        start = max(0, size - OUTPUT_LIMIT)
        parts.append(output_tail(os.pread(file, size - start, start), total=size) or "")
    if len(parts) == 2:
        return f"{parts[0].rstrip(chr(10))}\n{parts[1]}"
    return parts[0] if parts else None


def left_output(files: tuple[int, int]) -> str | None:
    """
    What a task printed into ``files`` (its process's `FdCapture`, made by the parent before
    the fork) when the process died before reporting it: written on to this process's
    stdout and stderr, as the task's process would have, and returned for its outcome.
    """
    flush_std()
    return _tails(files, (1, 2))


class FdCapture:
    """
    A process's file descriptors 1 and 2, pointed at memory files while a task runs: what the
    task (its prints, its logging, a subprocess it starts) writes there is kept, then written
    on to where it was going, so the console shows it as before, once the task ends.

    ``files`` made by the parent before it forked this process (`memory_files`) let it read
    what a task printed when the process dies before saying (`left_output`).
    """

    def __init__(self, files: tuple[int, int] | None = None) -> None:
        self._files = files or memory_files()
        self._saved = (os.dup(1), os.dup(2))

    def start(self) -> None:
        flush_std()
        for target, file in zip((1, 2), self._files, strict=True):
            os.ftruncate(file, 0)
            os.lseek(file, 0, os.SEEK_SET)
            os.dup2(file, target)

    def stop(self) -> str | None:
        """Put the descriptors back, pass on what was written, and return its tail."""
        flush_std()
        for target, saved in zip((1, 2), self._saved, strict=True):
            os.dup2(saved, target)
        output = _tails(self._files, (1, 2))
        for file in self._files:  # empty between tasks: a parent reads nothing stale
            os.ftruncate(file, 0)
        return output


def _streams_on_descriptors() -> None:  # pragma: no cover - runs in the worker
    """
    ``sys.stdout``/``sys.stderr`` of a worker write to descriptors 1 and 2, where `FdCapture`
    keeps them: a parent that had replaced them (a test runner capturing output) does not
    hide a step's prints from the store.
    """
    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = getattr(sys, name)
        try:
            ok = stream is not None and stream.fileno() == fd
        except (AttributeError, OSError, ValueError):
            ok = False
        if not ok:
            setattr(sys, name, open(fd, "w", buffering=1, encoding="utf-8",  # noqa: SIM115
                                    errors="backslashreplace", closefd=False))


def _write_frame(fd: int, data: bytes) -> None:
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int) -> bytes | None:
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    return _read_exact(fd, _HEADER.unpack(header)[0])


class _Worker:
    """The engine's handle on one worker process."""

    def __init__(self, pid: int, task_fd: int, result_fd: int, files: tuple[int, int]) -> None:
        self.pid = pid
        self.files = files  # the memory files its tasks print into (see FdCapture)
        self.task_fd = task_fd
        self.result_fd = result_fd
        self.current: tuple[TaskRun, Emit] | None = None
        self.done_count = 0
        self.dead = False  # reaped: must not be given a task
        self.stopped = False  # sent SIGTERM for its task's timeout: never given another
        self.reader: threading.Thread | None = None
        self._task_fd_open = True
        self._fd_lock = threading.Lock()

    def unread(self) -> int:
        """Bytes written to the task pipe that the worker has not read (Linux FIONREAD)."""
        with self._fd_lock:
            if not self._task_fd_open:
                return 0
            buf = array.array("i", [0])
            try:
                fcntl.ioctl(self.task_fd, termios.FIONREAD, buf)
            except OSError:
                return 0
            return buf[0]

    def close_tasks(self) -> None:
        """Close the task pipe once (the worker sees EOF and exits); a closed fd number may
        already belong to someone else, so it must never be closed twice."""
        with self._fd_lock:
            if self._task_fd_open:
                self._task_fd_open = False
                os.close(self.task_fd)


class ProcessExecutor(Executor):
    """
    Runs each task in a worker process forked from the engine; idle workers are reused.

    Args:
        steps: the graph's steps, by name; a task whose function, arguments and keywords
            are those of its step is sent by name, anything else is pickled.
        max_tasks_per_child: tasks a worker runs before it is replaced (0: no limit).
    """

    name: ClassVar[str] = "process"

    def __init__(self, steps: Mapping[str, Any] | None = None, max_tasks_per_child: int = 0):
        self._steps = dict(steps or {})
        self._max_tasks = max_tasks_per_child
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._workers: dict[int, _Worker] = {}
        self._closed = False

    # -- engine side ---------------------------------------------------------------------

    def submit(self, task: TaskRun, done: Emit) -> None:
        message = self._message(task)
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the process executor is closed")
                worker = self._idle.pop() if self._idle else None
            if worker is None:
                worker = self._spawn()
            with self._lock:  # the reader marks a worker dead under this lock
                if worker.dead:
                    continue
                worker.current = (task, done)
            try:
                _write_frame(worker.task_fd, message)
                return
            except OSError:
                # The worker died while idle, before its reader noticed. Unless the reader
                # already took the task to report it, try another worker.
                with self._lock:
                    if worker.current is None or worker.current[0] is not task:
                        return
                    worker.current = None
                    worker.dead = True

    def _message(self, task: TaskRun) -> bytes:
        spec = self._steps.get(task.step)
        by_name = (
            spec is not None and spec.func is task.func and spec.args is task.args
            and spec.kwargs is task.kwargs
        )
        payload = replace(task, func=None, args=(), kwargs={}) if by_name else task
        return pickle.dumps((by_name, payload), protocol=pickle.HIGHEST_PROTOCOL)

    def _spawn(self) -> _Worker:
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        files = memory_files()
        flush_std()  # else the child would write the parent's buffered text again
        parent = os.getpid()
        FORK_LOCK.acquire()  # no import half done by another thread (see FORK_LOCK)
        try:
            pid = os.fork()
        finally:
            FORK_LOCK.release()  # in the worker too: its copy was held by the forking thread
        if pid == 0:  # pragma: no cover - the worker never returns
            os.close(task_w)
            os.close(result_r)
            die_with_parent(parent)
            _worker_main(task_r, result_w, self._steps, files)
        os.close(task_r)
        os.close(result_w)
        worker = _Worker(pid, task_w, result_r, files)
        worker.reader = threading.Thread(target=self._read, args=(worker,),
                                         name=f"eventor-worker-{pid}", daemon=True)
        with self._lock:
            self._workers[pid] = worker
        worker.reader.start()
        return worker

    def _read(self, worker: _Worker) -> None:
        """Relay the worker's outcomes; when it ends, reap it and fail its task if it had one."""
        while (frame := _read_frame(worker.result_fd)) is not None:
            outcome = pickle.loads(frame)
            if not isinstance(outcome, Outcome):  # a message from the running task
                with self._lock:
                    current = worker.current
                if current is not None:
                    current[1](outcome)
                continue
            worker.done_count += 1
            with self._lock:  # cancel() marks it stopped under this lock
                retire = 0 < self._max_tasks <= worker.done_count or worker.stopped
                current, worker.current = worker.current, None
                if not retire and not self._closed:
                    self._idle.append(worker)  # before done(): the next task may reuse it
            if retire:
                worker.close_tasks()
            if current is not None:
                current[1](outcome)
        os.close(worker.result_fd)
        _, status = os.waitpid(worker.pid, 0)
        with self._lock:
            worker.dead = True
            current, worker.current = worker.current, None
            self._workers.pop(worker.pid, None)
            if worker in self._idle:
                self._idle.remove(worker)
        unread = worker.unread()
        worker.close_tasks()
        output = left_output(worker.files) if current is not None and not unread else None
        for file in worker.files:
            os.close(file)
        if current is not None:
            task, done = current
            if unread and not self._closed:
                # It died before reading the task (killed while idle): the task never
                # started, so the engine submits it again, from its own thread (a worker
                # forked from this short-lived thread would die with it: see _worker_main).
                done(Requeue(task))
            else:
                outcome = died(task.key, task.step, worker.pid, os.waitstatus_to_exitcode(status))
                outcome.output = output  # what it printed before it was killed
                done(outcome)

    def cancel(self, key: int, grace: float) -> bool:
        """
        Stop the worker running task ``key``: SIGTERM, then SIGKILL after ``grace`` s. A step
        that survives the SIGTERM (its handler raised, say) still ends its worker: the
        worker is not given another task, which the SIGKILL would hit.
        """
        with self._lock:
            worker = next((w for w in self._workers.values()
                           if w.current is not None and w.current[0].key == key), None)
            if worker is not None:
                worker.stopped = True
        if worker is None:
            return False
        send_signal(worker.pid, signal.SIGTERM)

        def kill_if_still_running() -> None:
            with self._lock:
                if worker.dead:
                    return
            send_signal(worker.pid, signal.SIGKILL)

        timer = threading.Timer(grace, kill_if_still_running)
        timer.daemon = True
        timer.start()
        return True

    def close(self) -> None:
        """End idle workers, terminate busy ones (SIGTERM, then SIGKILL), and reap them all."""
        with self._lock:
            self._closed = True
            workers = list(self._workers.values())
            self._idle.clear()
        for worker in workers:
            worker.close_tasks()
            if worker.current is not None:
                send_signal(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE
        for worker in workers:
            assert worker.reader is not None
            worker.reader.join(max(0.0, deadline - time.monotonic()))
            if worker.reader.is_alive():
                send_signal(worker.pid, signal.SIGKILL)
                worker.reader.join()


def send_signal(pid: int, sig: int) -> None:
    """Signal a process (a process group, for a negative pid); one already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def died(key: int, step: str, pid: int, exit_code: int, where: str = "") -> Outcome:
    """The outcome of a task whose process ended (``exit_code``) before reporting one."""
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        how = f"was killed by {name}"
    else:
        how = f"exited with code {exit_code} before returning"
    return Outcome(key, False, error_type=ProcessDied.__name__,
                   error_message=f"process {pid} of step {step!r}{where} {how}",
                   exit_code=exit_code, pid=pid, error_mro=_DIED_MRO)


def _load_prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:  # pragma: no cover - runs in the worker
    """
    Have the kernel SIGKILL this worker when the engine dies, so a step never outlives a
    crashed engine (recovery would run it again beside the orphan).

    Linux sends the signal when the *thread* that forked the worker ends, so workers are
    forked only from the engine's thread, never from a reader thread.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the engine died before prctl took effect
        os._exit(1)


def _worker_main(task_fd: int, result_fd: int, steps: Mapping[str, Any],
                 files: tuple[int, int]) -> None:  # pragma: no cover
    """Run tasks read from ``task_fd`` until it closes; never return."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        pid = os.getpid()

        def emit(message: Any) -> None:
            _write_frame(result_fd, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

        _streams_on_descriptors()
        capture = FdCapture(files)
        while (frame := _read_frame(task_fd)) is not None:
            by_name, task = pickle.loads(frame)
            if by_name:
                spec = steps[task.step]
                task = replace(task, func=spec.func, args=spec.args, kwargs=spec.kwargs)
            saved = {k: os.environ.get(k) for k in task.env}
            os.environ.update(task.env)
            capture.start()
            try:
                outcome = run_task(task, pid, emit)
            except KeyboardInterrupt as exc:  # raised by the step itself: its failure
                outcome = failure(task.key, exc, pid)
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
                output = capture.stop()
            outcome.output = output
            _write_frame(result_fd, pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL))
    except BaseException:
        code = 70
    finally:
        flush_std()
        os._exit(code)
