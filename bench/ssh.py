"""
Per-step cost of remote steps (the ssh executor) against local process steps, in one run.

    source .ci/sshd.sh && start_sshd && python bench/ssh.py

(`.ci/sshd.sh` starts an sshd on 127.0.0.1 and sets CI_SSH_*.) Cases, on sqlite files in a
temporary folder, logging at WARNING:
  chain-process   N no-op steps chained by success events, process executor (the baseline)
  chain-ssh       the same chain, every step on the loopback host (one connection, reused)
  fanout-ssh      one event triggering N steps on the loopback host
  first task      a one-step remote run: connecting, logging in, starting the agent

Prints ms/step, and the overhead of a remote step over a local process step (target: under
20 ms per remote step with the connection reused).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import core

import eventor as evr


def noop() -> None:
    """The step every case runs (on the host, imported from this file by path)."""


def host() -> dict[str, Any]:
    names = ("CI_SSH_ADDRESS", "CI_SSH_PORT", "CI_SSH_USER", "CI_SSH_KEY", "CI_SSH_KNOWN_HOSTS")
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise SystemExit(f"set {', '.join(missing)} (.ci/sshd.sh start_sshd sets them)")
    return {"address": os.environ["CI_SSH_ADDRESS"], "port": int(os.environ["CI_SSH_PORT"]),
            "user": os.environ["CI_SSH_USER"], "key_file": os.environ["CI_SSH_KEY"],
            "known_hosts": os.environ["CI_SSH_KNOWN_HOSTS"], "python": sys.executable,
            "workdir": str(Path(__file__).resolve().parent)}


def run(folder: Path, name: str, n: int, shape: str, remote: bool) -> tuple[float, float]:
    """(ms/step, ms to the first step's end) of a chain or fan-out of ``n`` no-op steps."""
    ev = evr.Eventor(name=name, store=str(folder / f"{name}.run.db"),
                     config={**core.QUIET, "HOSTS": {"loop": host()}})
    on = {"host": "loop"} if remote else {}
    go = ev.add_event("go")
    if shape == "chain":
        events = [go] + [ev.add_event(f"e{i}") for i in range(1, n)]
        for i in range(n):
            triggers = {evr.STEP_SUCCESS: events[i + 1]} if i + 1 < n else {}
            ev.add_step(f"s{i}", func=noop, triggers=triggers, **on)
            ev.add_assoc(events[i], f"s{i}")
    else:
        ev.add_assoc(go, *[ev.add_step(f"s{i}", func=noop, **on) for i in range(n)])
    ev.trigger_event(go, 1)
    start = time.perf_counter()
    ok = ev.run()
    elapsed = time.perf_counter() - start
    tasks = ev.store.tasks(ev.run_id)
    first = min(t["ended_at"] for t in tasks) - min(t["started_at"] for t in tasks)
    ev.close()
    if not ok or sum(t["status"] == "success" for t in tasks) != n:
        raise SystemExit(f"{name}: run failed or incomplete")
    return elapsed * 1000 / n, first * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--chain", type=int, default=200)
    parser.add_argument("--fanout", type=int, default=200)
    parser.add_argument("--first", type=int, default=5, help="one-step runs for the first-task cost")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        local, _ = run(folder, "chain-process", args.chain, "chain", remote=False)
        remote, _ = run(folder, "chain-ssh", args.chain, "chain", remote=True)
        fan, _ = run(folder, "fanout-ssh", args.fanout, "fanout", remote=True)
        firsts = sorted(run(folder, f"first-{i}", 1, "chain", remote=True)[1]
                        for i in range(args.first))
    overhead = remote - local
    print(f"ssh host {host()['user']}@{host()['address']}:{host()['port']} (loopback)")
    print(f"{'case':34} {'ms/step':>9}")
    print(f"{f'chain-process ({args.chain} steps)':34} {local:9.2f}")
    print(f"{f'chain-ssh ({args.chain} steps)':34} {remote:9.2f}")
    print(f"{f'fanout-ssh ({args.fanout} steps)':34} {fan:9.2f}")
    print(f"{'remote step overhead':34} {overhead:9.2f}  target <20 ms: "
          f"{'ok' if overhead < 20 else 'MISSED'}")
    print(f"{'first task (connect + agent), median':34} {firsts[len(firsts) // 2]:9.1f} ms")


if __name__ == "__main__":
    main()
