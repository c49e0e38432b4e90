"""
The ``dask`` executor: tasks run on a Dask distributed cluster.

The config's ``DASK`` section says which cluster: ``address`` (a running scheduler), or a
cluster started for the run and closed with it (``cluster_class`` by import path, default
`distributed.LocalCluster`, with ``cluster_kwargs``). Each task is sent with cloudpickle
(Dask's own serializer for functions) under a key of its own, runs in a worker thread, and
comes back as its `Outcome` with its ``ctx.trigger`` requests (in order, before the
outcome); the engine records them, so workers need no database credentials.

Eventor's promises on a cluster:

- Retries are Eventor's. A temporary cluster is started with
  ``distributed.scheduler.allowed-failures: 0``, so a worker that dies mid-step ends that
  try as a `ProcessDied` failure naming the worker (Dask's ``KilledWorker``) instead of
  being run again silently on another worker; a running scheduler with another setting is
  used, with a warning, since Dask would then rerun such a task itself.
- A step past its ``timeout`` is given ``timeout_grace`` seconds; then its worker is
  restarted (a thread cannot be stopped otherwise), which also fails the other tasks that
  worker was running, and the step ends as a `StepTimeout`. Workers must run under a nanny
  (the default) for that.
- Step logs stay in the workers' logs.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

import cloudpickle  # type: ignore[import-untyped]
import dask
import distributed

from eventor.exceptions import EventorConfigError, ProcessDied
from eventor.executors.base import (
    Emit,
    Executor,
    Message,
    Outcome,
    TaskRun,
    TriggerRequest,
    failure,
    install_task_environ,
    install_task_streams,
    qualified_names,
    run_task,
)

__all__ = ["DaskExecutor", "check_steps"]

_DIED_MRO = qualified_names(ProcessDied)
_UNGUARDED = (
    "Dask starts each worker process of a cluster it makes by importing the program's script "
    "again, which must not start the run again; start the run under "
    "'if __name__ == \"__main__\":', as multiprocessing requires")
_log = logging.getLogger("eventor.dask")
RESTART_WAIT = 30.0  # seconds to wait for the restart of a timed-out step's worker


def _run(payload: bytes, key: int) -> tuple[Outcome, list[TriggerRequest]]:
    """On a worker: run one task; its outcome and ``ctx.trigger`` requests, as data."""
    try:
        where = distributed.get_worker().address
    except ValueError:  # not on a worker (a test calling it directly)
        where = None
    try:
        task: TaskRun = cloudpickle.loads(payload)
    except BaseException as exc:  # the step's module is not importable on the worker
        outcome = failure(key, exc, os.getpid())
        outcome.error_message = (f"step cannot be loaded on Dask worker {where}: "
                                 f"{outcome.error_message}")
        outcome.host = where
        return outcome, []
    install_task_environ()  # each thread's task sees its own EVENTOR_* variables
    install_task_streams()  # and keeps what it prints
    triggers: list[TriggerRequest] = []

    def emit(message: Message) -> None:  # ctx.trigger(...): sent back with the outcome
        if isinstance(message, TriggerRequest):
            triggers.append(message)

    try:
        outcome = run_task(task, os.getpid(), emit, keep_output=True)
    except BaseException as exc:  # KeyboardInterrupt raised by the step: its failure
        outcome = failure(key, exc, os.getpid())
    outcome.host = where
    return outcome, triggers


def check_steps(steps: Any, settings: Mapping[str, Any]) -> None:
    """
    What the engine checks when it is made: each dask step can be sent (cloudpickle), and
    a ``cluster_class`` can be imported.

    Raises:
        EventorConfigError: naming the step or the key, and what to change.
    """
    if settings.get("cluster_class"):
        _cluster_class(settings["cluster_class"])
    for step in steps:
        try:
            cloudpickle.dumps((step.func, step.args, dict(step.kwargs)))
        except Exception as exc:
            raise EventorConfigError(
                f"step {step.name!r} runs on Dask, but its function or arguments cannot be "
                f"sent to a worker ({type(exc).__name__}: {exc}); give it arguments that pickle",
                key=f"step {step.name!r} task_construct") from None


def _cluster_class(path: str) -> Any:
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise EventorConfigError(f"cannot import {path!r}: {exc}; install the package that "
                                 "provides it", key="DASK.cluster_class") from None


def _processing_on(key: Any, dask_scheduler: Any = None) -> str | None:
    """On the scheduler: the worker running ``key``, if any."""
    task = dask_scheduler.tasks.get(key)
    where = getattr(task, "processing_on", None)
    return getattr(where, "address", None)


def _allowed_failures(dask_scheduler: Any) -> int:
    return int(dask_scheduler.allowed_failures)


class DaskExecutor(Executor):
    """
    Submits each task to a Dask cluster, connected (or started) when the run first needs it.

    Every task handed to `submit` is *open* until its one outcome is delivered (`_deliver`,
    the only caller of ``done``): from its result, its failure, its timeout, the cluster
    failing, or `close`. Two threads serve the cluster, so the engine's thread never waits
    on it: a submitter sends the tasks handed over since its last pass (one ``client.map``
    per set of worker resources), and a collector takes each result as the client fetches
    it, so one slow worker holds back only its own tasks.

    Args:
        settings: the config's ``DASK`` section.
        resources: the steps' ``worker_resources``, by step name.
    """

    name: ClassVar[str] = "dask"

    def __init__(self, settings: Mapping[str, Any] | None = None,
                 resources: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self._settings = dict(settings or {})
        self._resources = dict(resources or {})
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._client: distributed.Client | None = None
        self._cluster: Any = None
        self._unusable: str | None = None  # why the cluster cannot be used, once that is known
        self._open: dict[int, tuple[TaskRun, Emit]] = {}  # task key -> task, until its outcome
        self._queued: list[tuple[TaskRun, bytes]] = []  # for the submitter
        self._futures: dict[int, distributed.Future] = {}  # task key -> its future, once sent
        self._task_of: dict[Any, int] = {}  # Dask key -> task key
        self._timers: list[threading.Timer] = []
        self._completed: distributed.as_completed | None = None
        self._threads: list[threading.Thread] = []
        self._closed = False

    # -- the cluster ---------------------------------------------------------------------

    def _connect(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the run closed its Dask executor")
            if self._client is not None:
                return
            if self._unusable is not None:
                raise RuntimeError(self._unusable)
            try:
                client = self._open_client()
                self._completed = distributed.as_completed(
                    [], loop=client.loop, with_results=True, raise_errors=False)
            except Exception as exc:
                self._unusable = f"the Dask cluster cannot be used: {type(exc).__name__}: {exc}"
                self._shut(None)
                raise RuntimeError(self._unusable) from None
            self._client = client
            for target in (self._send, self._collect):
                thread = threading.Thread(target=self._guarded, args=(target,),
                                          name="eventor-dask", daemon=True)
                self._threads.append(thread)
                thread.start()

    def _open_client(self) -> distributed.Client:
        settings = self._settings
        timeout = settings.get("connect_timeout", 30)
        address = settings.get("address")
        if address:
            client = distributed.Client(address, timeout=timeout, set_as_default=False)
            try:
                failures = client.run_on_scheduler(_allowed_failures)
            except Exception:
                client.close()
                raise
            if failures:
                _log.warning(
                    "The Dask scheduler at %s reruns a task whose worker died (allowed-failures "
                    "%s): such a step may run twice. Start it with "
                    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0 for Eventor's retries only.",
                    address, failures)
            return client
        kwargs = dict(settings.get("cluster_kwargs") or {})
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            try:
                if settings.get("cluster_class"):
                    self._cluster = _cluster_class(settings["cluster_class"])(**kwargs)
                else:
                    kwargs.setdefault("dashboard_address", None)
                    self._cluster = distributed.LocalCluster(**kwargs)
            except Exception as exc:
                raise RuntimeError(f"{type(exc).__name__}: {exc} (if the program starts its run "
                                   f"at the top level of its script: {_UNGUARDED})") from None
        return distributed.Client(self._cluster, timeout=timeout, set_as_default=False)

    # -- tasks ---------------------------------------------------------------------------

    def submit(self, task: TaskRun, done: Emit) -> None:
        with self._lock:
            self._open[task.key] = (task, done)
        try:
            self._connect()
            payload = cloudpickle.dumps(task)
        except RuntimeError as exc:
            self._deliver(task.key, Outcome(task.key, False, error_type="DaskClusterError",
                                            error_message=f"step {task.step!r}: {exc}"))
            return
        except Exception as exc:
            self._deliver(task.key, Outcome(
                task.key, False, error_type=type(exc).__qualname__,
                error_message=f"step {task.step!r} cannot be sent to the Dask cluster: {exc}"))
            return
        with self._lock:
            if task.key in self._open:
                self._queued.append((task, payload))
                self._wake.notify_all()

    def _deliver(self, key: int, *messages: Message) -> None:
        """Hand a task's last messages (its triggers, then its outcome) to the engine, once."""
        with self._lock:
            entry = self._open.pop(key, None)
            future = self._futures.pop(key, None)  # dropped: the client releases it
            if future is not None:
                self._task_of.pop(future.key, None)
        if entry is None:
            return  # it has had its outcome
        for message in messages:
            entry[1](message)

    def _guarded(self, loop: Any) -> None:
        """Run a background loop; if it dies, no open task may wait for ever."""
        try:
            loop()
        except BaseException as exc:
            with self._lock:
                self._unusable = f"the Dask executor failed: {type(exc).__name__}: {exc}"
                keys = list(self._open)
            for key in keys:
                self._fail(key, "DaskClusterError", self._unusable)

    def _fail(self, key: int, error_type: str, message: str, **fields: Any) -> None:
        with self._lock:
            entry = self._open.get(key)
        if entry is not None:
            self._deliver(key, Outcome(key, False, error_type=error_type,
                                       error_message=f"step {entry[0].step!r}: {message}",
                                       **fields))

    def _send(self) -> None:
        """The submitter thread: the tasks handed over since the last pass go together."""
        client, completed = self._client, self._completed
        assert client is not None and completed is not None
        while True:
            with self._lock:
                while not self._queued and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                batch = [(t, p) for t, p in self._queued if t.key in self._open]
                self._queued = []
            groups: dict[tuple[tuple[str, float], ...], list[tuple[TaskRun, bytes]]] = {}
            for item in batch:
                wants = tuple(sorted((self._resources.get(item[0].step) or {}).items()))
                groups.setdefault(wants, []).append(item)
            for wants, items in groups.items():
                # A key of its own on a shared cluster: other runs, retries and engines never
                # collide. Dask groups tasks by the key's leading words ("eventor", or
                # "eventor-extract" for a step named extract): one group per step, never one
                # per task, which would swamp the scheduler.
                keys = [f"eventor-{t.step}-{t.run_id}-{t.recovery}-{t.key}-{uuid.uuid4().hex[:12]}"
                        for t, _ in items]
                try:
                    futures = client.map(_run, [p for _, p in items], [t.key for t, _ in items],
                                         key=keys, pure=False, retries=0,
                                         resources=dict(wants) or None)
                except Exception as exc:  # the client closed under us, or refused the tasks
                    for task, _ in items:
                        self._fail(task.key, "DaskClusterError",
                                   f"could not be submitted to the Dask cluster: {exc}")
                    continue
                stale = []
                with self._lock:
                    for (task, _), future in zip(items, futures, strict=True):
                        if task.key in self._open:
                            self._futures[task.key] = future
                            self._task_of[future.key] = task.key
                        else:
                            stale.append(future)  # stopped while being sent
                for future in stale:
                    with contextlib.suppress(Exception):
                        future.cancel()
                completed.update([f for f in futures if f not in stale])
                with self._lock:
                    self._wake.notify_all()  # the collector may be waiting for work

    def _collect(self) -> None:
        """The collector thread: each result, as the client fetches it, to the engine."""
        completed = self._completed
        assert completed is not None
        while not self._closed:
            try:
                batch = completed.next_batch(block=True)
            except StopIteration:  # nothing out on the cluster right now
                with self._lock:
                    if not self._closed and not self._futures:
                        self._wake.wait(0.2)
                continue
            for future, result in batch:
                self._report(future, result)

    def _report(self, future: distributed.Future, result: Any) -> None:
        with self._lock:
            key = self._task_of.get(future.key)
        if key is None:
            return  # it has had its outcome
        if future.status == "finished" and isinstance(result, tuple) and len(result) == 2:
            outcome, triggers = result
            self._deliver(key, *triggers, outcome)
            return
        with self._lock:
            entry = self._open.get(key)
        if entry is not None:
            self._deliver(key, self._failed(entry[0], future, result))

    def _failed(self, task: TaskRun, future: distributed.Future, error: Any) -> Outcome:
        if isinstance(error, tuple) and len(error) == 3:  # (type, exception, traceback)
            error = error[1]
        if isinstance(error, distributed.KilledWorker):
            worker = getattr(getattr(error, "last_worker", None), "address", None) or "?"
            return Outcome(task.key, False, error_type=ProcessDied.__name__, error_mro=_DIED_MRO,
                           host=worker, error_message=(
                               f"the Dask worker {worker} running step {task.step!r} died "
                               "mid-step"))
        if future.status == "cancelled":
            return Outcome(task.key, False, error_type="CancelledError", error_message=(
                f"step {task.step!r} was cancelled on the Dask cluster (its scheduler or "
                "client went away)"))
        mro = qualified_names(type(error)) if isinstance(error, BaseException) else ()
        return Outcome(task.key, False, error_type=type(error).__qualname__,
                       error_message=f"step {task.step!r} failed on the Dask cluster: {error}",
                       error_mro=mro)

    def cancel(self, key: int, grace: float) -> bool:
        """
        A step past its timeout. Not sent yet: it never will be. Running: it has ``grace``
        seconds, then the worker running it is restarted (a thread cannot be stopped
        otherwise); it ends as a failure either way.
        """
        with self._lock:
            if key not in self._open:
                return False
            sent = key in self._futures
            if not sent:
                self._queued = [(t, p) for t, p in self._queued if t.key != key]
        if not sent:  # queued, or being sent (the submitter drops it)
            self._fail(key, "StepTimeout", "was stopped before it reached the Dask cluster")
            return True
        timer = threading.Timer(grace, self._stop, args=(key,))
        timer.daemon = True
        with self._lock:
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()
        return True

    def _stop(self, key: int) -> None:
        """The grace is over: restart the step's worker (bounded), then end the step."""
        with self._lock:
            future = self._futures.get(key)
            client = self._client
            if future is None or client is None or self._closed:
                return  # it ended within the grace (or the run closed)
            # Its end is told once its worker is back, not when the cancelled future comes
            # back: the steps its failure starts must not be sent to a worker restarting.
            self._task_of.pop(future.key, None)
        said = {"note": ""}

        def restart() -> None:
            try:
                where = client.run_on_scheduler(_processing_on, future.key)
                future.cancel()  # not started yet: this is enough
                if where:
                    client.restart_workers([where], raise_for_error=True)
                    said["note"] = f"; its worker {where} was restarted to stop it"
            except Exception as exc:
                said["note"] = f"; its worker could not be restarted ({exc}), so it may run on"
                _log.warning("The thread of a timed-out step may still run on the Dask cluster: "
                             "%s", exc)

        try:  # whatever happens here, the step gets its outcome: nothing else will give it
            helper = threading.Thread(target=restart, name="eventor-dask-restart", daemon=True)
            helper.start()
            helper.join(RESTART_WAIT)
            if helper.is_alive():
                said["note"] = (f"; its worker did not restart within {RESTART_WAIT:g} s, so it "
                                "may run on")
        finally:
            self._fail(key, "StepTimeout", f"overran its timeout on the Dask cluster{said['note']}")

    def close(self) -> None:
        """
        End every open task (a `CancelledError` outcome, before anything else can be said of
        it), cancel what is on the cluster, and close a cluster started for the run.
        """
        with self._lock:
            self._closed = True
            self._wake.notify_all()
            keys = list(self._open)
            futures = list(self._futures.values())
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        for key in keys:
            self._fail(key, "CancelledError", "the run closed its Dask executor first")
        client = self._client
        if client is not None:
            with contextlib.suppress(Exception):
                client.cancel(futures)
            if self._completed is not None:
                self._completed.clear()
        self._shut(client)
        for thread in self._threads:
            thread.join(5)

    def _shut(self, client: distributed.Client | None) -> None:
        """Close the client and a cluster started for the run, whatever state they are in."""
        if client is not None:
            with contextlib.suppress(Exception):
                client.close(timeout=10)
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=10)
