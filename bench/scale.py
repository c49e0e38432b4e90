"""
Growth and recovery at scale: does the per-step cost stay flat as runs grow?

    python bench/scale.py [--small 10000] [--big 100000] [--chain 1000] [--long-chain 10000]

Cases (each in a fresh interpreter, on a WAL sqlite file in a temporary folder):
  fanout N       one event triggering N thread steps (one step, N sequences): ms/step, peak RSS
  chain-dsl N    a Flow class of N thread steps chained by success events, each taking ctx
  plan N         recovery_plan() of an N-task run whose engine died half way
  recover N      recovering that run when every task succeeded (all skipped): ms per task

Prints each figure and the growth ratios the issue sets targets for (big / small per step).
Record results in docs/performance.md with the command line used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

QUIET = {"LOGGING": {"logging_level": "WARNING", "console": False}}


def noop() -> None:
    return None


def wide(store: str, n: int, **kwargs: Any) -> Any:
    """An Eventor of one thread step triggered in n sequences (the flow every case runs)."""
    import eventor as evr

    config = {**QUIET, "task_construct": "thread", **kwargs.pop("config", {})}
    ev = evr.Eventor(name="big", store=store, config=config, **kwargs)
    go = ev.add_event("go")
    ev.add_assoc(go, ev.add_step("s", func=noop))
    for seq in range(n):
        ev.trigger_event(go, seq)
    return ev


def fanout(folder: Path, n: int) -> dict[str, float]:
    ev = wide(str(folder / "wide.run.db"), n)
    start = time.perf_counter()
    ok = ev.run()
    took = time.perf_counter() - start
    ev.close()
    assert ok
    return {"ms_per_step": took * 1000 / n,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def chain_dsl(folder: Path, n: int) -> dict[str, float]:
    sys.path.insert(0, str(Path(__file__).parent))
    from core import run_dsl_chain

    return {"ms_per_step": run_dsl_chain(folder, n, "thread")}


def _recorded_run(folder: Path, n: int, *, kill_half: bool) -> tuple[str, str]:
    """A run of n one-step sequences; with kill_half, its engine 'dies' after half of them."""
    store = str(folder / "big.run.db")
    ev = wide(store, n)
    ok = ev.run(max_loops=n // 2 if kill_half else -1)
    run_id = ev.run_id
    if kill_half:  # as an engine killed mid-run leaves it: an attempt that never ended
        from sqlalchemy import create_engine, text

        engine = create_engine(f"sqlite:///{store}")
        with engine.begin() as conn:
            conn.execute(text("update eventor_attempts set status='running', ended_at=null, "
                              "pid=1, host='gone'"))
        engine.dispose()
    ev.close()
    assert ok or kill_half
    return store, run_id


def plan(folder: Path, n: int) -> dict[str, float]:
    import eventor as evr

    store, run_id = _recorded_run(folder, n, kill_half=True)
    ev = wide(store, 0, run_mode=evr.RUN_RECOVER, run_id=run_id,
              config={"heartbeat_grace": 3, "heartbeat_interval": 1})
    start = time.perf_counter()
    planned = ev.recovery_plan()
    took = time.perf_counter() - start
    ev.close()
    assert len(planned.tasks) >= n // 2
    return {"seconds": took}


def recover(folder: Path, n: int) -> dict[str, float]:
    import eventor as evr

    store, run_id = _recorded_run(folder, n, kill_half=False)
    ev = wide(store, n, run_mode=evr.RUN_RECOVER, run_id=run_id)
    start = time.perf_counter()
    ok = ev.run()
    took = time.perf_counter() - start
    skipped = sum(1 for t in ev.store.tasks(run_id, 1) if t["executor"] == "skip")
    ev.close()
    assert ok and skipped == n, (ok, skipped)
    return {"ms_per_task": took * 1000 / n}


CASES = {"fanout": fanout, "chain-dsl": chain_dsl, "plan": plan, "recover": recover}


def run(case: str, n: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--one", case, str(n)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--chain", type=int, default=1000)
    parser.add_argument("--long-chain", type=int, default=10_000)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        case, n = args.one
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(CASES[case](Path(folder), int(n))))
        return
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs")
    small, big = run("fanout", args.small), run("fanout", args.big)
    for n, r in ((args.small, small), (args.big, big)):
        print(f"fanout {n:>7}: {r['ms_per_step']:.4f} ms/step, peak RSS {r['peak_rss_mb']:.0f} MB")
    growth = big["ms_per_step"] / small["ms_per_step"]
    print(f"  growth {growth:.2f}x per step (target <= 1.2x, RSS < 300 MB)")
    short, long = run("chain-dsl", args.chain), run("chain-dsl", args.long_chain)
    print(f"chain-dsl {args.chain:>5}: {short['ms_per_step']:.3f} ms/step; "
          f"{args.long_chain}: {long['ms_per_step']:.3f} ms/step; growth "
          f"{long['ms_per_step'] / short['ms_per_step']:.2f}x (target <= 1.2x)")
    planned = run("plan", args.big)
    print(f"recovery_plan of a {args.big}-task run: {planned['seconds']:.2f} s (target < 2 s)")
    recovered = run("recover", args.big)
    print(f"recover a {args.big}-task run, all skipped: {recovered['ms_per_task']:.4f} ms/task "
          "(target <= 0.02)")


if __name__ == "__main__":
    main()
