"""Steps the SSH tests run on a host: the agent imports them by name from the repository."""

from __future__ import annotations

import os
import time
from pathlib import Path

import eventor as evr


def where(tag: str) -> dict[str, object]:
    return {"tag": tag, "pid": os.getpid(), "step": os.environ.get("EVENTOR_STEP_NAME"),
            "sequence": os.environ.get("EVENTOR_STEP_SEQUENCE")}


def fail(message: str) -> None:
    raise ValueError(message)


def hang(pidfile: str, seconds: float = 60.0) -> str:
    """Write this process's pid, then sleep: the test kills it, or cuts its connection."""
    Path(pidfile).write_text(str(os.getpid()))
    print("hanging now", flush=True)
    time.sleep(seconds)
    return "woke"


def hang_once(pidfile: str) -> str:
    """Hang on the first try (the test cuts its connection), return at once on the next."""
    if Path(pidfile).exists():
        Path(pidfile).write_text(str(os.getpid()))
        return "second try"
    return hang(pidfile)


class Seed(evr.Flow):
    """The seed's shape: s1 here, s2 on host ``loop``, s3 here."""

    start = evr.Event()
    s1_done = evr.Event()
    s2_done = evr.Event()
    s2_failed = evr.Event()
    pinged = evr.Event()
    fail_s2: bool = False

    @evr.step(on=start, success=s1_done)
    def s1(self) -> str:
        return "s1 here"

    @evr.step(on=s1_done, success=s2_done, failure=s2_failed, host="loop", emits=[pinged])
    def s2(self, ctx: evr.StepContext) -> dict[str, object]:
        if self.fail_s2:
            raise ValueError("s2 failed on purpose")
        ctx.trigger(self.pinged)
        ctx.log.warning("s2 says hello")
        print("s2 printed this")
        return {**where("s2"), "s1": ctx.results["s1"]}

    @evr.step(on=s2_done)
    def s3(self, ctx: evr.StepContext) -> object:
        return ctx.results["s2"]

    @evr.step(on=s2_failed)
    def mend(self) -> str:
        return "mended"

    @evr.step(on=pinged)
    def pong(self) -> str:
        return "pong"


def chatty(megabytes: int) -> str:
    """A line, a pause longer than the pings, then a flood on stderr."""
    import sys

    print("first line", flush=True)
    time.sleep(1.5)
    sys.stdout.write(("x" * 1023 + "\n") * (megabytes * 1024))
    sys.stdout.flush()
    return "said it all"


def leave_a_grandchild(then_die: bool) -> str:
    """Start a process that holds the report pipe open, then die or return."""
    import signal
    import subprocess

    subprocess.Popen(["sleep", "30"])
    if os.fork() == 0:  # a forked grandchild inherits every descriptor, the report pipe too
        time.sleep(30)
        os._exit(0)
    if then_die:
        os.kill(os.getpid(), signal.SIGKILL)
    return "returned"


def broken_pipe() -> str:
    reader, writer = os.pipe()
    os.close(reader)
    try:
        os.write(writer, b"x")
    except BrokenPipeError:
        return "handled"
    finally:
        os.close(writer)
    return "not raised"
