"""Steps the Dask tests run on workers (importable there: the workers' PYTHONPATH is the repo)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import eventor as evr


def where(tag: str) -> dict[str, object]:
    import distributed

    return {"tag": tag, "pid": os.getpid(), "worker": distributed.get_worker().address,
            "step": os.environ.get("EVENTOR_STEP_NAME"),
            "sequence": os.environ.get("EVENTOR_STEP_SEQUENCE"), "env": dict(evr.task_env())}


def hang(pidfile: str, seconds: float = 60.0) -> str:
    """Record the worker process's pid, then sleep (a thread no one can stop)."""
    Path(pidfile).write_text(str(os.getpid()))
    time.sleep(seconds)
    return "woke"


def running(pidfile: str) -> bool:
    """Whether the process whose pid ``pidfile`` holds is still running (this host only)."""
    try:
        os.kill(int(Path(pidfile).read_text()), 0)
    except ProcessLookupError:
        return False
    return True


def hang_once(pidfile: str) -> str:
    """Hang on the first try (the test kills the worker), return on the next."""
    if Path(pidfile).exists():
        return "second try"
    return hang(pidfile)


def held(log: str, seconds: float) -> None:
    """Append this task's start and end times: a pool of 1 must never overlap them."""
    start = time.time()
    time.sleep(seconds)
    with open(log, "a") as f:
        f.write(f"{start} {time.time()}\n")


class Diamond(evr.Flow):
    """&, |, sequences and ctx.trigger, on the cluster."""

    start = evr.Event()
    left_done = evr.Event()
    right_done = evr.Event()
    pinged = evr.Event()
    both = left_done & right_done
    either = left_done | right_done

    @evr.step(on=start, success=left_done, emits=[pinged])
    def left(self, ctx: evr.StepContext) -> object:
        ctx.trigger(self.pinged, f"{ctx.sequence}.ping")
        return where("left")

    @evr.step(on=start, success=right_done)
    def right(self) -> object:
        return where("right")

    @evr.step(on=both)
    def joined(self, ctx: evr.StepContext) -> list[object]:
        return [ctx.results["left"]["tag"], ctx.results["right"]["tag"]]

    @evr.step(on=either)
    def first(self) -> str:
        return "one of them"

    @evr.step(on=pinged)
    def pong(self, ctx: evr.StepContext) -> str:
        return f"pong in {ctx.sequence}"
