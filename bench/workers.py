"""
Bounded by default: processes and memory of wide fan-outs of process steps that sleep.

    python bench/workers.py [--steps 10000] [--sleep 0.005] [--wide 700] [--wide-sleep 0.1]

Cases (each in a fresh interpreter, on a sqlite file in a temporary folder):
  bounded  --steps process steps of --sleep s each, one event, the default process_workers
  wide     --wide steps of --wide-sleep s, default workers, beside the same fan-out with
           process_workers = --wide (what the engine did before it was bounded by default)

Prints the peak number of the engine's child processes, the peak memory of the engine and
its children together (PSS: shared pages counted once), the wall time and ms per step.
Record results in docs/performance.md with the command line used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def children() -> list[int]:
    pids: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            pids += [int(p) for p in (task / "children").read_text().split()]
    return pids


def pss(pid: int | str) -> int:
    """Bytes of memory a process holds, pages it shares with others counted by their share."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def sleepy(seconds: float) -> None:
    time.sleep(seconds)


def one_case(steps: int, sleep: float, workers: int | None) -> dict[str, float]:
    import eventor as evr

    config: dict = {"LOGGING": {"logging_level": "WARNING", "console": False}}
    if workers:
        config["process_workers"] = workers
    peak = {"children": 0, "rss": 0}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            kids = children()
            peak["children"] = max(peak["children"], len(kids))
            peak["rss"] = max(peak["rss"], pss("self") + sum(pss(p) for p in kids))
            time.sleep(0.01)

    with tempfile.TemporaryDirectory() as folder:
        ev = evr.Eventor(name="wide", store=str(Path(folder) / "w.run.db"), config=config)
        go = ev.add_event("go")
        ev.add_assoc(go, ev.add_step("s", func=sleepy, kwargs={"seconds": sleep}))
        for seq in range(steps):
            ev.trigger_event(go, seq)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start = time.perf_counter()
        ok = ev.run()
        took = time.perf_counter() - start
        stop.set()
        watcher.join()
        ev.close()
    assert ok
    return {"steps": steps, "workers": ev.config.engine_options().process_workers,
            "children": peak["children"], "rss_mb": peak["rss"] / 2**20,
            "engine_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "seconds": took, "ms_per_step": took / steps * 1000}


def run(steps: int, sleep: float, workers: int | None) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--one", json.dumps([steps, sleep, workers])],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def show(label: str, r: dict[str, float]) -> None:
    print(f"{label:<28} {r['steps']:>6} steps  {r['workers']:>5} workers  "
          f"{r['children']:>5} processes at most  {r['rss_mb']:>8.0f} MB at most "
          f"(engine {r['engine_maxrss_mb']:.0f} MB)  {r['seconds']:6.2f} s  "
          f"{r['ms_per_step']:.3f} ms/step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--sleep", type=float, default=0.005)
    parser.add_argument("--wide", type=int, default=700)
    parser.add_argument("--wide-sleep", type=float, default=0.1)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_case(*json.loads(args.one))))
        return
    print(f"python {sys.version.split()[0]}, {len(os.sched_getaffinity(0))} CPUs")
    show("bounded (default workers)", run(args.steps, args.sleep, None))
    bounded = run(args.wide, args.wide_sleep, None)
    unbounded = run(args.wide, args.wide_sleep, args.wide)
    show("wide, default workers", bounded)
    show("wide, a worker per step", unbounded)
    print(f"a worker per step: {unbounded['children'] / bounded['children']:.0f}x the processes, "
          f"{unbounded['rss_mb'] / bounded['rss_mb']:.1f}x the memory, "
          f"{bounded['seconds'] / unbounded['seconds']:.1f}x faster")


if __name__ == "__main__":
    main()
