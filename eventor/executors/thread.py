"""The ``thread`` executor: runs tasks on a pool of threads in the engine's process."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any, ClassVar

from eventor.executors.base import (
    Emit,
    Executor,
    TaskRun,
    failure,
    install_task_environ,
    install_task_streams,
    run_task,
)

_STOP = None
_log = logging.getLogger("eventor.thread")


class ThreadExecutor(Executor):
    """
    Runs tasks on up to ``workers`` threads, started as needed; more tasks wait in a queue.

    A plain queue and long-lived threads, rather than `concurrent.futures`, because the hop
    to a worker and back is most of a thread step's cost. Threads share one process
    environment; each step still reads its own Eventor variables from ``os.environ`` (see
    `install_task_environ`), or from `eventor.task_env()`.
    """

    name: ClassVar[str] = "thread"

    def __init__(self, workers: int = 32) -> None:
        install_task_environ()  # each thread step sees its own variables in os.environ
        install_task_streams()  # and keeps what it prints
        self._max = max(1, workers)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._idle = 0
        # keys of tasks given up on at their timeout -> until when close() waits for them
        self._abandoned: dict[int, float] = {}
        self._running: dict[threading.Thread, TaskRun] = {}  # thread -> its task
        self._closed = False
        self._pid = os.getpid()

    def submit(self, task: TaskRun, done: Emit) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the thread executor is closed")
            if self._idle:
                self._idle -= 1  # that worker is spoken for
            elif len(self._threads) < self._max:
                thread = threading.Thread(target=self._work, daemon=True,
                                          name=f"eventor-step-{len(self._threads)}")
                self._threads.append(thread)
                thread.start()
        self._queue.put((task, done))

    def _work(self) -> None:
        get, pid, me, running = self._queue.get, self._pid, threading.current_thread(), self._running
        while True:
            item = get()
            if item is _STOP:
                return
            task, done = item
            running[me] = task
            try:
                outcome = run_task(task, pid, done, keep_output=True)
            except BaseException as exc:  # a KeyboardInterrupt raised by the step itself
                outcome = failure(task.key, exc, pid)
            # Idle before reporting: the engine may submit the next task as soon as it has
            # the outcome, and must find this thread free rather than start another one.
            with self._lock:
                del running[me]
                replaced = task.key in self._abandoned
                if replaced:  # its replacement goes on; this thread ends
                    del self._abandoned[task.key]
                    self._max -= 1
                    self._threads.remove(me)
                else:
                    self._idle += 1
            done(outcome)
            if replaced:
                return

    def cancel(self, key: int, grace: float) -> bool:
        """
        A thread cannot be stopped: the task past its timeout is given up on (False), and
        its thread is replaced until the task returns, so the engine's other tasks still
        have ``workers`` threads. `close` waits ``grace`` seconds from now for it to return.
        """
        with self._lock:
            if not self._closed:
                self._abandoned[key] = time.monotonic() + grace
                self._max += 1
        return False

    def close(self) -> None:
        """
        Let running tasks finish, drop queued ones, and join every thread. A task given up
        on at its timeout may never return, and `close` must: its thread is waited for until
        the task's grace (``timeout_grace`` from its timeout) is over, then named in a
        warning and left (a daemon thread: it ends when its task returns, or with the
        process).
        """
        with self._lock:
            self._closed = True
            stuck = {t: (task, self._abandoned[task.key]) for t, task in self._running.items()
                     if task.key in self._abandoned}
            threads = [t for t in self._threads if t not in stuck]
        for thread, (task, until) in stuck.items():
            thread.join(max(0.0, until - time.monotonic()))
            if thread.is_alive():
                _log.warning("Step %s[%s] timed out and still runs in thread %s after its "
                             "timeout_grace; close() leaves it, and it ends with the program if "
                             "it has not returned (run steps that may hang with the process "
                             "executor)", task.step, task.sequence, thread.name)
        while True:  # drop tasks that never started
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in threads:
            self._queue.put(_STOP)
        for thread in threads:
            thread.join()
